"""A bank's BMS view: aggregates of its racks plus the bank's own nameplate."""

from __future__ import annotations

from ess_simulator.battery import CELL_MAX_V, CELL_MIN_V, BatteryDesign
from ess_simulator.readings import (
    BANK_STATE_CONNECTED,
    CHARGE_STATUS_CHARGING,
    CHARGE_STATUS_DISCHARGING,
    CHARGE_STATUS_HOLDING,
    BankReading,
    RackReading,
)

MAX_C_RATE = 1.0  # nameplate charge/discharge limit
HOLDING_BAND = 0.02  # |power| below this share of the nameplate counts as holding


def charge_status(power_w: float, max_power_w: float) -> int:
    if abs(power_w) < HOLDING_BAND * max_power_w:
        return CHARGE_STATUS_HOLDING
    return CHARGE_STATUS_DISCHARGING if power_w > 0 else CHARGE_STATUS_CHARGING


def bank_reading(
    index: int,
    name: str,
    racks: tuple[RackReading, ...],
    design: BatteryDesign,
    *,
    second: int,
    own_event_bits: int,
) -> BankReading:
    """Bank values from its racks: sums for current and power, capacity-weighted
    SoC, extremes with the rack and module they come from."""
    count = len(racks)
    capacity_wh = sum(rack.capacity_wh for rack in racks)
    max_power = MAX_C_RATE * capacity_wh
    power = sum(rack.power_w for rack in racks)
    highest = max(racks, key=lambda rack: rack.cell_v_max)
    lowest = min(racks, key=lambda rack: rack.cell_v_min)
    hottest = max(racks, key=lambda rack: rack.module_temp_max_c)
    coldest = min(racks, key=lambda rack: rack.module_temp_min_c)
    event_bits = own_event_bits
    for rack in racks:
        event_bits |= rack.event_bits
    return BankReading(
        index=index,
        name=name,
        soc_pct=sum(rack.soc_pct * rack.capacity_wh for rack in racks) / capacity_wh,
        soh_pct=sum(rack.soh_pct for rack in racks) / count,
        voltage_v=sum(rack.voltage_v for rack in racks) / count,
        current_a=sum(rack.current_a for rack in racks),
        power_w=power,
        cell_v_max=highest.cell_v_max,
        cell_v_max_rack=highest.index,
        cell_v_max_module=highest.cell_v_max_module,
        cell_v_min=lowest.cell_v_min,
        cell_v_min_rack=lowest.index,
        cell_v_min_module=lowest.cell_v_min_module,
        cell_v_avg=sum(rack.cell_v_avg for rack in racks) / count,
        module_temp_max_c=hottest.module_temp_max_c,
        module_temp_max_rack=hottest.index,
        module_temp_max_module=hottest.module_temp_max_module,
        module_temp_min_c=coldest.module_temp_min_c,
        module_temp_min_rack=coldest.index,
        module_temp_min_module=coldest.module_temp_min_module,
        module_temp_avg_c=sum(rack.module_temp_avg_c for rack in racks) / count,
        charge_status=charge_status(power, max_power),
        state=BANK_STATE_CONNECTED,
        event_bits=event_bits,
        capacity_ah=sum(rack.capacity_ah for rack in racks),
        capacity_wh=capacity_wh,
        max_charge_w=max_power,
        max_discharge_w=max_power,
        max_voltage_v=design.cells_per_rack * CELL_MAX_V,
        min_voltage_v=design.cells_per_rack * CELL_MIN_V,
        cycle_count=round(sum(rack.cycle_count for rack in racks) / count),
        heartbeat=second % 0x10000,
        racks_connected=sum(1 for rack in racks if rack.contactor_closed),
        cells_balancing=sum(rack.cells_balancing for rack in racks),
        racks=racks,
    )
