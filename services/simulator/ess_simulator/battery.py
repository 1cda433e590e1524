"""Lithium iron phosphate racks and banks: cells, modules, aggregates.

Racks in a bank share the bank's power unevenly (fixed per-rack shares) and
carry fixed personalities (SoC offset, SoH, temperature offset, cell spread),
so racks differ but stay plausible. Bank values are computed from its racks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ess_simulator import events
from ess_simulator.noise import quarters, stable_key, symmetric, uniform
from ess_simulator.readings import (
    ModuleReading,
    RackReading,
)

CELL_NOMINAL_V = 3.2
CELL_MAX_V = 3.65
CELL_MIN_V = 2.5
CELL_RESISTANCE_OHM = 0.0004
HEAT_RISE_AT_1C = 30.0  # module temperature rise at a steady 1C current, kelvin


def lfp_open_circuit_v(soc_pct: float) -> float:
    """Open-circuit cell voltage: LFP's flat plateau with steep ends."""
    s = min(max(soc_pct / 100.0, 0.0), 1.0)
    volts = 3.22 + 0.10 * s
    if s > 0.85:
        volts += 0.10 * ((s - 0.85) / 0.15) ** 2
    if s < 0.15:
        volts -= 0.06 * ((0.15 - s) / 0.15) ** 2
    return volts


def knee(soc_pct: float) -> float:
    """0 on the plateau, rising to 1 at empty or full, where cells drift apart."""
    s = soc_pct / 100.0
    return max(0.0, (s - 0.8) / 0.2, (0.2 - s) / 0.2)


@dataclass(frozen=True, slots=True)
class BatteryDesign:
    modules_per_rack: int
    cells_per_module: int
    cell_capacity_ah: float

    @property
    def cells_per_rack(self) -> int:
        return self.modules_per_rack * self.cells_per_module

    @property
    def rack_capacity_wh(self) -> float:
        return self.cells_per_rack * CELL_NOMINAL_V * self.cell_capacity_ah


@dataclass(frozen=True, slots=True)
class RackTraits:
    """What makes one rack different from its neighbours, fixed by the seed."""

    key: int
    weight: float  # relative share of the bank's power, about 1
    soc_offset_pct: float
    soh_pct: float
    temp_offset_c: float
    cycle_base: int
    cell_spread_v: float
    module_soc_offsets: tuple[float, ...]
    module_v_offsets: tuple[float, ...]
    module_temp_offsets: tuple[float, ...]

    @classmethod
    def from_seed(cls, seed: int, device_id: str, design: BatteryDesign) -> RackTraits:
        key = stable_key(seed, device_id)
        modules = range(design.modules_per_rack)
        return cls(
            key=key,
            weight=1.0 + 0.04 * symmetric(key, 1),
            soc_offset_pct=3.0 * symmetric(key, 2),
            soh_pct=95.0 + 4.5 * uniform(key, 3),
            temp_offset_c=2.0 * symmetric(key, 4),
            cycle_base=200 + int(400 * uniform(key, 5)),
            cell_spread_v=0.006 + 0.006 * uniform(key, 6),
            module_soc_offsets=tuple(0.6 * symmetric(key, 10, m) for m in modules),
            module_v_offsets=tuple(0.003 * symmetric(key, 11, m) for m in modules),
            module_temp_offsets=tuple(1.2 * symmetric(key, 12, m) for m in modules),
        )


@dataclass(frozen=True, slots=True)
class RackInputs:
    """The rack's operating point at one second, decided by the site model."""

    index: int
    second: int
    soc_pct: float
    power_w: float  # true power, + = discharging
    lagged_power_w: float  # power a thermal time constant ago: drives temperature
    ambient_c: float
    noise_pct: float
    cycles_since_epoch: int


def _module(
    traits: RackTraits,
    design: BatteryDesign,
    inputs: RackInputs,
    m: int,
    *,
    current_a: float,
    heat_c: float,
) -> ModuleReading:
    key, second, cells = traits.key, inputs.second, design.cells_per_module
    # Two hashes give this second's eight small random terms, one more the slow ones.
    v_noise, t_noise, v_hi, v_lo = quarters(key, second, 100 + m)
    t_hi, t_lo, _, _ = quarters(key, second, 200 + m)
    soc = min(max(inputs.soc_pct + traits.module_soc_offsets[m], 0.0), 100.0)
    avg_v = (
        lfp_open_circuit_v(soc)
        - current_a * CELL_RESISTANCE_OHM
        + traits.module_v_offsets[m]
        + 0.0016 * (v_noise - 0.5)
    )
    spread = traits.cell_spread_v * (1.0 + 2.0 * knee(soc))
    avg_c = (
        inputs.ambient_c
        + traits.temp_offset_c
        + traits.module_temp_offsets[m]
        + heat_c
        + 0.02 * (soc - 50.0)
        + 0.3 * (t_noise - 0.5)
    )
    # Which cell is the extreme one changes slowly, not every second.
    pick_max, pick_min, pick_hot, pick_cold = quarters(key, 300 + m, second // 300)
    max_cell = 1 + int(pick_max * cells)
    min_cell = 1 + (max_cell + int(pick_min * (cells - 1))) % cells
    hot_cell = 1 + int(pick_hot * cells)
    cold_cell = 1 + (hot_cell + int(pick_cold * (cells - 1))) % cells
    return ModuleReading(
        soc_pct=soc,
        soh_pct=traits.soh_pct,
        cells=cells,
        cell_v_max=avg_v + spread * (0.6 + 0.1 * v_hi),
        cell_v_max_cell=max_cell,
        cell_v_min=avg_v - spread * (0.5 + 0.1 * v_lo),
        cell_v_min_cell=min_cell,
        cell_v_avg=avg_v,
        cell_temp_max_c=avg_c + 0.6 + 0.4 * t_hi,
        cell_temp_max_cell=hot_cell,
        cell_temp_min_c=avg_c - 0.5 - 0.3 * t_lo,
        cell_temp_min_cell=cold_cell,
        cell_temp_avg_c=avg_c,
    )


def rack_reading(
    traits: RackTraits,
    design: BatteryDesign,
    inputs: RackInputs,
    event_policy: events.EventPolicy,
) -> RackReading:
    """Everything a rack BMS reports at one second."""
    cells = design.cells_per_rack
    ocv = lfp_open_circuit_v(inputs.soc_pct)
    true_current = inputs.power_w / (cells * ocv)
    current = true_current * (1.0 + inputs.noise_pct / 100.0 * symmetric(traits.key, inputs.second))
    lagged_c_rate = inputs.lagged_power_w / (cells * ocv) / design.cell_capacity_ah
    heat = HEAT_RISE_AT_1C * lagged_c_rate**2
    modules = tuple(
        _module(traits, design, inputs, m, current_a=current, heat_c=heat)
        for m in range(design.modules_per_rack)
    )
    hottest = max(range(len(modules)), key=lambda m: modules[m].cell_temp_max_c)
    coldest = min(range(len(modules)), key=lambda m: modules[m].cell_temp_min_c)
    highest = max(range(len(modules)), key=lambda m: modules[m].cell_v_max)
    lowest = min(range(len(modules)), key=lambda m: modules[m].cell_v_min)
    voltage = sum(module.cell_v_avg for module in modules) * design.cells_per_module
    soc = inputs.soc_pct
    bits = event_policy.bits(
        traits.key, inputs.second, events.BATTERY_WARNING_BITS, events.BATTERY_ALARM_BITS
    )
    if modules[highest].cell_v_max > 3.40:
        bits |= 1 << events.OVER_VOLT_WARNING
    if modules[lowest].cell_v_min < 3.0:
        bits |= 1 << events.UNDER_VOLT_WARNING
    if modules[hottest].cell_temp_max_c > 40.0:
        bits |= 1 << events.OVER_TEMP_WARNING
    if soc < 10.0:
        bits |= 1 << events.UNDER_SOC_MIN_WARNING
    if soc > 90.0:
        bits |= 1 << events.OVER_SOC_MAX_WARNING
    return RackReading(
        index=inputs.index,
        soc_pct=soc,
        soh_pct=traits.soh_pct,
        dod_pct=100.0 - soc,
        voltage_v=voltage,
        current_a=current,
        power_w=voltage * current,
        cell_v_max=modules[highest].cell_v_max,
        cell_v_max_module=highest + 1,
        cell_v_min=modules[lowest].cell_v_min,
        cell_v_min_module=lowest + 1,
        cell_v_avg=sum(module.cell_v_avg for module in modules) / len(modules),
        module_temp_max_c=modules[hottest].cell_temp_max_c,
        module_temp_max_module=hottest + 1,
        module_temp_min_c=modules[coldest].cell_temp_min_c,
        module_temp_min_module=coldest + 1,
        module_temp_avg_c=sum(module.cell_temp_avg_c for module in modules) / len(modules),
        cycle_count=traits.cycle_base + inputs.cycles_since_epoch,
        cells_balancing=int(design.modules_per_rack * 2 * knee(soc)),
        event_bits=bits,
        contactor_closed=True,
        capacity_ah=design.cell_capacity_ah,
        capacity_wh=design.rack_capacity_wh,
        modules=modules,
    )
