"""The one table from SunSpec points to the standard reading fields.

Per table, each field names the model and point it comes from. Float fields
take the point with its scale factor applied; integer fields take the raw
value (alarm and warning bits split the event bitfield with masks built from
the model's own symbol names). `group_mean` averages a point over a model's
repeating groups (714 has DC voltage per port only). Points of these models
that no field takes go to the reading's extras as "<model>.<point>".
"""

from __future__ import annotations

from dataclasses import dataclass

from ess_common.model import Table
from ess_sunspec import ModelDef
from ess_sunspec.models import BATTERY_802, LITHIUM_ION_STRING_804


@dataclass(frozen=True, slots=True)
class PointSource:
    model_id: int
    point: str
    mask: int | None = None  # integer fields: keep only these bits
    group_mean: bool = False  # float fields: mean over the repeating groups


def _event_masks(model: ModelDef, point: str) -> tuple[int, int]:
    """(alarm mask, warning mask) of an event bitfield, from its symbol names."""
    symbols = model.point(point).symbols
    warnings = sum(1 << bit for name, bit in symbols if name.endswith("_WARNING"))
    alarms = sum(
        1 << bit
        for name, bit in symbols
        if not name.endswith("_WARNING") and "RESERVED" not in name
    )
    return alarms, warnings


BANK_ALARMS, BANK_WARNINGS = _event_masks(BATTERY_802, "Evt1")
RACK_ALARMS, RACK_WARNINGS = _event_masks(LITHIUM_ION_STRING_804, "Evt1")

P = PointSource
FIELD_SOURCES: dict[Table, dict[str, PointSource]] = {
    "bank": {
        "soc_pct": P(802, "SoC"),
        "soh_pct": P(802, "SoH"),
        "voltage_v": P(802, "V"),
        "current_a": P(802, "A"),
        "power_w": P(802, "W"),
        "charge_current_limit_a": P(802, "AChaMax"),
        "discharge_current_limit_a": P(802, "ADisChaMax"),
        "cell_v_max": P(802, "CellVMax"),
        "cell_v_min": P(802, "CellVMin"),
        "cell_v_avg": P(802, "CellVAvg"),
        "module_t_max_c": P(803, "ModTmpMax"),
        "module_t_min_c": P(803, "ModTmpMin"),
        "module_t_avg_c": P(803, "ModTmpAvg"),
        "strings_connected": P(803, "NStrCon"),
        "state": P(802, "State"),
        "alarm_bits": P(802, "Evt1", mask=BANK_ALARMS),
        "warning_bits": P(802, "Evt1", mask=BANK_WARNINGS),
    },
    "rack": {
        "soc_pct": P(804, "SoC"),
        "soh_pct": P(804, "SoH"),
        "voltage_v": P(804, "V"),
        "current_a": P(804, "A"),
        "cell_v_max": P(804, "CellVMax"),
        "cell_v_min": P(804, "CellVMin"),
        "cell_v_avg": P(804, "CellVAvg"),
        "cell_v_max_module": P(804, "CellVMaxMod"),
        "cell_v_min_module": P(804, "CellVMinMod"),
        "module_t_max_c": P(804, "ModTmpMax"),
        "module_t_min_c": P(804, "ModTmpMin"),
        "module_t_avg_c": P(804, "ModTmpAvg"),
        "modules": P(804, "NMod"),
        "state": P(804, "St"),
        "alarm_bits": P(804, "Evt1", mask=RACK_ALARMS),
        "warning_bits": P(804, "Evt1", mask=RACK_WARNINGS),
    },
    "pcs": {
        "active_power_w": P(701, "W"),
        "reactive_power_var": P(701, "Var"),
        "apparent_power_va": P(701, "VA"),
        "power_factor": P(701, "PF"),
        "frequency_hz": P(701, "Hz"),
        "voltage_ll_v": P(701, "LLV"),
        "current_a": P(701, "A"),
        "dc_voltage_v": P(714, "DCV", group_mean=True),
        "dc_current_a": P(714, "DCA"),
        "dc_power_w": P(714, "DCW"),
        "energy_charged_wh": P(701, "TotWhAbs"),
        "energy_discharged_wh": P(701, "TotWhInj"),
        "soc_pct": P(713, "SoC"),
        "energy_available_wh": P(713, "WHAvail"),
        "cabinet_t_c": P(701, "TmpCab"),
        "state": P(701, "InvSt"),
        "alarm_bits": P(701, "Alrm"),
    },
    "etc": {
        "active_power_w": P(203, "W"),
        "reactive_power_var": P(203, "VAR"),
        "frequency_hz": P(203, "Hz"),
        "voltage_v": P(203, "PPV"),
        "current_a": P(203, "A"),
        "energy_import_wh": P(203, "TotWhImp"),
        "energy_export_wh": P(203, "TotWhExp"),
        "alarm_bits": P(203, "Evt"),
    },
}

# Models each table reads, in no particular order; others in a chain are skipped.
MODELS_BY_TABLE: dict[Table, frozenset[int]] = {
    table: frozenset(source.model_id for source in sources.values())
    for table, sources in FIELD_SOURCES.items()
}
# Models whose repeating groups a field needs; the others are read up to their fixed block.
MODELS_READ_WITH_GROUPS = frozenset(
    source.model_id
    for sources in FIELD_SOURCES.values()
    for source in sources.values()
    if source.group_mean
)


def mapped_points(table: Table, model_id: int) -> frozenset[str]:
    return frozenset(
        s.point
        for s in FIELD_SOURCES[table].values()
        if s.model_id == model_id and not s.group_mean
    )
