"""What each simulated device measures at one second, in physical units.

Signs: battery current and power are positive when discharging; PCS active
power is positive when exporting to the grid (SunSpec 701), and the site
meter uses the same sign. Register encoders (SunSpec or vendor map) read these
objects; the flat field names are what a vendor map's `field:` refers to.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

FieldValue = int | float | bool | str | None

# SunSpec 802 ChaSt and State values, used by bank readings.
CHARGE_STATUS_DISCHARGING = 3
CHARGE_STATUS_CHARGING = 4
CHARGE_STATUS_HOLDING = 6
BANK_STATE_CONNECTED = 3


@dataclass(frozen=True, slots=True)
class ModuleReading:
    soc_pct: float
    soh_pct: float
    cells: int
    cell_v_max: float
    cell_v_max_cell: int
    cell_v_min: float
    cell_v_min_cell: int
    cell_v_avg: float
    cell_temp_max_c: float
    cell_temp_max_cell: int
    cell_temp_min_c: float
    cell_temp_min_cell: int
    cell_temp_avg_c: float


@dataclass(frozen=True, slots=True)
class RackReading:
    index: int  # 1-based position in its bank (SunSpec 804 Idx)
    soc_pct: float
    soh_pct: float
    dod_pct: float
    voltage_v: float
    current_a: float
    power_w: float
    cell_v_max: float
    cell_v_max_module: int
    cell_v_min: float
    cell_v_min_module: int
    cell_v_avg: float
    module_temp_max_c: float
    module_temp_max_module: int
    module_temp_min_c: float
    module_temp_min_module: int
    module_temp_avg_c: float
    cycle_count: int
    cells_balancing: int
    event_bits: int  # SunSpec 802/804 Evt1 bit numbers
    contactor_closed: bool
    capacity_ah: float
    capacity_wh: float
    modules: tuple[ModuleReading, ...]


@dataclass(frozen=True, slots=True)
class BankReading:
    index: int  # 1-based position in its site
    name: str
    soc_pct: float
    soh_pct: float
    voltage_v: float
    current_a: float
    power_w: float
    cell_v_max: float
    cell_v_max_rack: int
    cell_v_max_module: int
    cell_v_min: float
    cell_v_min_rack: int
    cell_v_min_module: int
    cell_v_avg: float
    module_temp_max_c: float
    module_temp_max_rack: int
    module_temp_max_module: int
    module_temp_min_c: float
    module_temp_min_rack: int
    module_temp_min_module: int
    module_temp_avg_c: float
    charge_status: int  # SunSpec 802 ChaSt
    state: int  # SunSpec 802 State
    event_bits: int
    capacity_ah: float
    capacity_wh: float
    max_charge_w: float
    max_discharge_w: float
    max_voltage_v: float
    min_voltage_v: float
    cycle_count: int
    heartbeat: int
    racks_connected: int
    cells_balancing: int
    racks: tuple[RackReading, ...]


@dataclass(frozen=True, slots=True)
class DcPortReading:
    """One bank seen from the PCS's DC side (SunSpec 714 port)."""

    index: int
    name: str
    voltage_v: float
    current_a: float
    power_w: float
    discharged_wh: float
    charged_wh: float
    temp_c: float


@dataclass(frozen=True, slots=True)
class PcsReading:
    power_w: float
    reactive_var: float
    apparent_va: float
    power_factor: float
    current_a: float
    voltage_ll_v: float
    voltage_ln_v: float
    frequency_hz: float
    exported_wh: float
    imported_wh: float
    dc_power_w: float
    dc_current_a: float
    dc_discharged_wh: float
    dc_charged_wh: float
    ambient_temp_c: float
    cabinet_temp_c: float
    heatsink_temp_c: float
    transformer_temp_c: float
    soc_pct: float
    soh_pct: float
    capacity_wh: float
    available_wh: float
    running: bool
    alarm_bits: int  # SunSpec 701 Alrm bit numbers
    ports: tuple[DcPortReading, ...]


@dataclass(frozen=True, slots=True)
class MeterReading:
    power_w: float
    reactive_var: float
    apparent_va: float
    power_factor: float
    current_a: float
    voltage_ln_v: float
    voltage_ll_v: float
    frequency_hz: float
    exported_wh: float
    imported_wh: float
    event_bits: int  # SunSpec 203 Evt bit numbers


Reading = RackReading | BankReading | PcsReading | MeterReading
_NESTED = {"modules", "racks", "ports"}


def flat_fields(reading: Reading) -> dict[str, FieldValue]:
    """Scalar fields of a reading by name (nested groups left out)."""
    return {f.name: getattr(reading, f.name) for f in fields(reading) if f.name not in _NESTED}


def field_names(reading_type: type[Reading]) -> set[str]:
    return {f.name for f in fields(reading_type) if f.name not in _NESTED}
