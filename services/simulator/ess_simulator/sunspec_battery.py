"""Battery readings as SunSpec 802 + 803 (bank BMS) and 804 (rack BMS) models.

Fixed scale factors where the range is known (SoC 0.1 %, cell voltage 1 mV,
temperature 0.1 degC, string voltage 0.1 V); power, current and capacity
scale factors follow the device's nameplate so large banks still fit 16 bits.
"""

from __future__ import annotations

from ess_simulator.readings import BankReading, ModuleReading, RackReading
from ess_sunspec import ModelDef, PointValue, scale_factor_for, to_raw
from ess_sunspec.models import BATTERY_802, LITHIUM_ION_BANK_803, LITHIUM_ION_STRING_804

SOC_SF = -1
SOH_SF = -1
V_SF = -1
CELL_V_SF = -3
TEMP_SF = -1
LITHIUM_ION = 4  # 802 Typ
LOC_REM_REMOTE = 0
SET_OP_CONNECT = 1
INVERTER_STARTED = 3
STRING_ENABLED_AND_CLOSED = 0b11  # 803 StrSt / 804 St bits 0 and 1
CONTACTOR_0_CLOSED = 0b1

Values = dict[str, PointValue | None]
ModelValues = tuple[ModelDef, Values, list[Values]]  # model, fixed block, repeating groups


def _raw(value: float, scale_factor: int) -> int:
    return to_raw(value, scale_factor)


def battery_802(bank: BankReading) -> Values:
    ah_sf = scale_factor_for(bank.capacity_ah, signed=False, finest=0)
    wh_sf = scale_factor_for(bank.capacity_wh, signed=False, finest=0)
    w_sf = scale_factor_for(bank.max_discharge_w, signed=True, finest=0)
    max_current = bank.max_discharge_w / bank.min_voltage_v
    a_sf = scale_factor_for(max_current, signed=True, finest=-1)
    return {
        "AHRtg": _raw(bank.capacity_ah, ah_sf),
        "WHRtg": _raw(bank.capacity_wh, wh_sf),
        "WChaRteMax": _raw(bank.max_charge_w, w_sf),
        "WDisChaRteMax": _raw(bank.max_discharge_w, w_sf),
        "SoCMax": _raw(95.0, SOC_SF),
        "SoCMin": _raw(5.0, SOC_SF),
        "SoC": _raw(bank.soc_pct, SOC_SF),
        "DoD": _raw(100.0 - bank.soc_pct, SOC_SF),
        "SoH": _raw(bank.soh_pct, SOH_SF),
        "NCyc": bank.cycle_count,
        "ChaSt": bank.charge_status,
        "LocRemCtl": LOC_REM_REMOTE,
        "Hb": bank.heartbeat,
        "CtrlHb": 0,
        "AlmRst": 0,
        "Typ": LITHIUM_ION,
        "State": bank.state,
        "Evt1": bank.event_bits,
        "Evt2": 0,
        "EvtVnd1": 0,
        "EvtVnd2": 0,
        "V": _raw(bank.voltage_v, V_SF),
        "VMax": _raw(bank.max_voltage_v, V_SF),
        "VMin": _raw(bank.min_voltage_v, V_SF),
        "CellVMax": _raw(bank.cell_v_max, CELL_V_SF),
        "CellVMaxStr": bank.cell_v_max_rack,
        "CellVMaxMod": bank.cell_v_max_module,
        "CellVMin": _raw(bank.cell_v_min, CELL_V_SF),
        "CellVMinStr": bank.cell_v_min_rack,
        "CellVMinMod": bank.cell_v_min_module,
        "CellVAvg": _raw(bank.cell_v_avg, CELL_V_SF),
        "A": _raw(bank.current_a, a_sf),
        "AChaMax": _raw(max_current, a_sf),
        "ADisChaMax": _raw(max_current, a_sf),
        "W": _raw(bank.power_w, w_sf),
        "SetOp": SET_OP_CONNECT,
        "SetInvState": INVERTER_STARTED,
        "AHRtg_SF": ah_sf,
        "WHRtg_SF": wh_sf,
        "WChaDisChaMax_SF": w_sf,
        "SoC_SF": SOC_SF,
        "DoD_SF": SOC_SF,
        "SoH_SF": SOH_SF,
        "V_SF": V_SF,
        "CellV_SF": CELL_V_SF,
        "A_SF": a_sf,
        "AMax_SF": a_sf,
        "W_SF": w_sf,
    }


def _string_group(rack: RackReading, a_sf: int) -> Values:
    return {
        "StrNMod": len(rack.modules),
        "StrSt": STRING_ENABLED_AND_CLOSED if rack.contactor_closed else 0b01,
        "StrConFail": 0,
        "StrSoC": _raw(rack.soc_pct, SOC_SF),
        "StrSoH": _raw(rack.soh_pct, SOH_SF),
        "StrA": _raw(rack.current_a, a_sf),
        "StrCellVMax": _raw(rack.cell_v_max, CELL_V_SF),
        "StrCellVMaxMod": rack.cell_v_max_module,
        "StrCellVMin": _raw(rack.cell_v_min, CELL_V_SF),
        "StrCellVMinMod": rack.cell_v_min_module,
        "StrCellVAvg": _raw(rack.cell_v_avg, CELL_V_SF),
        "StrModTmpMax": _raw(rack.module_temp_max_c, TEMP_SF),
        "StrModTmpMaxMod": rack.module_temp_max_module,
        "StrModTmpMin": _raw(rack.module_temp_min_c, TEMP_SF),
        "StrModTmpMinMod": rack.module_temp_min_module,
        "StrModTmpAvg": _raw(rack.module_temp_avg_c, TEMP_SF),
        "StrDisRsn": 0,
        "StrConSt": CONTACTOR_0_CLOSED if rack.contactor_closed else 0,
        "StrEvt1": rack.event_bits,
        "StrEvt2": 0,
        "StrEvtVnd1": 0,
        "StrEvtVnd2": 0,
        "StrSetEna": 0,
        "StrSetCon": 0,
    }


def lithium_ion_bank_803(bank: BankReading) -> tuple[Values, list[Values]]:
    racks = bank.racks
    a_sf = scale_factor_for(bank.max_discharge_w / bank.min_voltage_v, signed=True, finest=-1)
    by_voltage = sorted(racks, key=lambda rack: rack.voltage_v)
    by_current = sorted(racks, key=lambda rack: rack.current_a)
    fixed: Values = {
        "NStr": len(racks),
        "NStrCon": bank.racks_connected,
        "ModTmpMax": _raw(bank.module_temp_max_c, TEMP_SF),
        "ModTmpMaxStr": bank.module_temp_max_rack,
        "ModTmpMaxMod": bank.module_temp_max_module,
        "ModTmpMin": _raw(bank.module_temp_min_c, TEMP_SF),
        "ModTmpMinStr": bank.module_temp_min_rack,
        "ModTmpMinMod": bank.module_temp_min_module,
        "ModTmpAvg": _raw(bank.module_temp_avg_c, TEMP_SF),
        "StrVMax": _raw(by_voltage[-1].voltage_v, V_SF),
        "StrVMaxStr": by_voltage[-1].index,
        "StrVMin": _raw(by_voltage[0].voltage_v, V_SF),
        "StrVMinStr": by_voltage[0].index,
        "StrVAvg": _raw(sum(rack.voltage_v for rack in racks) / len(racks), V_SF),
        "StrAMax": _raw(by_current[-1].current_a, a_sf),
        "StrAMaxStr": by_current[-1].index,
        "StrAMin": _raw(by_current[0].current_a, a_sf),
        "StrAMinStr": by_current[0].index,
        "StrAAvg": _raw(sum(rack.current_a for rack in racks) / len(racks), a_sf),
        "NCellBal": bank.cells_balancing,
        "CellV_SF": CELL_V_SF,
        "ModTmp_SF": TEMP_SF,
        "A_SF": a_sf,
        "SoH_SF": SOH_SF,
        "SoC_SF": SOC_SF,
        "V_SF": V_SF,
    }
    return fixed, [_string_group(rack, a_sf) for rack in racks]


def _module_group(module: ModuleReading) -> Values:
    return {
        "ModNCell": module.cells,
        "ModSoC": _raw(module.soc_pct, SOC_SF),
        "ModSoH": _raw(module.soh_pct, SOH_SF),
        "ModCellVMax": _raw(module.cell_v_max, CELL_V_SF),
        "ModCellVMaxCell": module.cell_v_max_cell,
        "ModCellVMin": _raw(module.cell_v_min, CELL_V_SF),
        "ModCellVMinCell": module.cell_v_min_cell,
        "ModCellVAvg": _raw(module.cell_v_avg, CELL_V_SF),
        "ModCellTmpMax": _raw(module.cell_temp_max_c, TEMP_SF),
        "ModCellTmpMaxCell": module.cell_temp_max_cell,
        "ModCellTmpMin": _raw(module.cell_temp_min_c, TEMP_SF),
        "ModCellTmpMinCell": module.cell_temp_min_cell,
        "ModCellTmpAvg": _raw(module.cell_temp_avg_c, TEMP_SF),
    }


def lithium_ion_string_804(rack: RackReading) -> tuple[Values, list[Values]]:
    a_sf = scale_factor_for(rack.capacity_ah * 2.0, signed=True, finest=-1)  # up to 2C
    fixed: Values = {
        "Idx": rack.index,
        "NMod": len(rack.modules),
        "St": STRING_ENABLED_AND_CLOSED if rack.contactor_closed else 0b01,
        "ConFail": 0,
        "NCellBal": rack.cells_balancing,
        "SoC": _raw(rack.soc_pct, SOC_SF),
        "DoD": _raw(rack.dod_pct, SOC_SF),
        "NCyc": rack.cycle_count,
        "SoH": _raw(rack.soh_pct, SOH_SF),
        "A": _raw(rack.current_a, a_sf),
        "V": _raw(rack.voltage_v, V_SF),
        "CellVMax": _raw(rack.cell_v_max, CELL_V_SF),
        "CellVMaxMod": rack.cell_v_max_module,
        "CellVMin": _raw(rack.cell_v_min, CELL_V_SF),
        "CellVMinMod": rack.cell_v_min_module,
        "CellVAvg": _raw(rack.cell_v_avg, CELL_V_SF),
        "ModTmpMax": _raw(rack.module_temp_max_c, TEMP_SF),
        "ModTmpMaxMod": rack.module_temp_max_module,
        "ModTmpMin": _raw(rack.module_temp_min_c, TEMP_SF),
        "ModTmpMinMod": rack.module_temp_min_module,
        "ModTmpAvg": _raw(rack.module_temp_avg_c, TEMP_SF),
        "ConSt": CONTACTOR_0_CLOSED if rack.contactor_closed else 0,
        "Evt1": rack.event_bits,
        "Evt2": 0,
        "EvtVnd1": 0,
        "EvtVnd2": 0,
        "SetEna": 0,
        "SetCon": 0,
        "SoC_SF": SOC_SF,
        "SoH_SF": SOH_SF,
        "DoD_SF": SOC_SF,
        "A_SF": a_sf,
        "V_SF": V_SF,
        "CellV_SF": CELL_V_SF,
        "ModTmp_SF": TEMP_SF,
    }
    return fixed, [_module_group(module) for module in rack.modules]


def bank_models(bank: BankReading) -> list[ModelValues]:
    """The bank BMS's models after the common model, in chain order."""
    fixed_803, strings = lithium_ion_bank_803(bank)
    return [(BATTERY_802, battery_802(bank), []), (LITHIUM_ION_BANK_803, fixed_803, strings)]


def rack_models(rack: RackReading) -> list[ModelValues]:
    fixed, modules = lithium_ion_string_804(rack)
    return [(LITHIUM_ION_STRING_804, fixed, modules)]
