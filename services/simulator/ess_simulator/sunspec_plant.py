"""PCS readings as SunSpec 701 + 713 + 714, the site meter as SunSpec 203.

Power scale factors follow the PCS rating so multi-megawatt sites fit 16 bits;
per-phase values split the three-phase totals evenly.
"""

from __future__ import annotations

from ess_simulator.readings import MeterReading, PcsReading
from ess_simulator.sunspec_battery import ModelValues, Values
from ess_sunspec import scale_factor_for, to_raw
from ess_sunspec.models import (
    DER_AC_MEASUREMENT_701,
    DER_DC_MEASUREMENT_714,
    DER_STORAGE_CAPACITY_713,
    METER_WYE_203,
)

V_SF = -1
HZ_SF_701 = -3
HZ_SF_203 = -2
PF_SF_701 = -3  # power factor as a fraction
PF_SF_203 = -1  # power factor in percent
TEMP_SF = -1
PCT_SF = -1
THREE_PHASE = 2  # 701 ACType
INV_RUNNING = 3  # 701 InvSt
GRID_FOLLOWING = 0b1  # 701 DERMode bit 0
ESS_PORT = 1  # 714 PrtTyp
PORT_ON = 1  # 714 DCSta
METER_WH_SF = 3  # acc32 in kWh: a site's lifetime energy would overflow Wh


def _raw(value: float, scale_factor: int) -> int:
    return to_raw(value, scale_factor)


def _power_sf(pcs: PcsReading) -> int:
    return scale_factor_for(pcs.capacity_wh * 1.2, signed=True, finest=0)  # 1C plus headroom


def der_ac_701(pcs: PcsReading) -> Values:
    w_sf = _power_sf(pcs)
    a_sf = scale_factor_for(pcs.capacity_wh * 1.2 / 600.0, signed=True, finest=-1)
    values: Values = {
        "ACType": THREE_PHASE,
        "St": 1 if pcs.running else 0,
        "InvSt": INV_RUNNING if pcs.running else 0,
        "ConnSt": 1,
        "Alrm": pcs.alarm_bits,
        "DERMode": GRID_FOLLOWING,
        "W": _raw(pcs.power_w, w_sf),
        "VA": _raw(pcs.apparent_va, w_sf),
        "Var": _raw(pcs.reactive_var, w_sf),
        "PF": _raw(pcs.power_factor, PF_SF_701),
        "A": _raw(pcs.current_a, a_sf),
        "LLV": _raw(pcs.voltage_ll_v, V_SF),
        "LNV": _raw(pcs.voltage_ln_v, V_SF),
        "Hz": _raw(pcs.frequency_hz, HZ_SF_701),
        "TotWhInj": round(pcs.exported_wh),
        "TotWhAbs": round(pcs.imported_wh),
        "TmpAmb": _raw(pcs.ambient_temp_c, TEMP_SF),
        "TmpCab": _raw(pcs.cabinet_temp_c, TEMP_SF),
        "TmpSnk": _raw(pcs.heatsink_temp_c, TEMP_SF),
        "TmpTrns": _raw(pcs.transformer_temp_c, TEMP_SF),
        "ThrotSrc": 0,
        "A_SF": a_sf,
        "V_SF": V_SF,
        "Hz_SF": HZ_SF_701,
        "W_SF": w_sf,
        "PF_SF": PF_SF_701,
        "VA_SF": w_sf,
        "Var_SF": w_sf,
        "TotWh_SF": 0,
        "TotVarh_SF": 0,
        "Tmp_SF": TEMP_SF,
        "MnAlrmInfo": "PCS ALARM" if pcs.alarm_bits else "",
    }
    pairs = (("L1", "VL1L2"), ("L2", "VL2L3"), ("L3", "VL3L1"))
    for phase, line_to_line in pairs:
        values[f"W{phase}"] = _raw(pcs.power_w / 3.0, w_sf)
        values[f"VA{phase}"] = _raw(pcs.apparent_va / 3.0, w_sf)
        values[f"Var{phase}"] = _raw(pcs.reactive_var / 3.0, w_sf)
        values[f"PF{phase}"] = _raw(pcs.power_factor, PF_SF_701)
        values[f"A{phase}"] = _raw(pcs.current_a, a_sf)
        values[line_to_line] = _raw(pcs.voltage_ll_v, V_SF)
        values[f"V{phase}"] = _raw(pcs.voltage_ln_v, V_SF)
    return values


def der_storage_713(pcs: PcsReading) -> Values:
    wh_sf = scale_factor_for(pcs.capacity_wh, signed=False, finest=0)
    return {
        "WHRtg": _raw(pcs.capacity_wh, wh_sf),
        "WHAvail": _raw(pcs.available_wh, wh_sf),
        "SoC": _raw(pcs.soc_pct, PCT_SF),
        "SoH": _raw(pcs.soh_pct, PCT_SF),
        "Sta": 1 if pcs.alarm_bits else 0,
        "WH_SF": wh_sf,
        "Pct_SF": PCT_SF,
    }


def der_dc_714(pcs: PcsReading) -> tuple[Values, list[Values]]:
    w_sf = _power_sf(pcs)
    a_sf = scale_factor_for(pcs.capacity_wh * 1.2 / 1000.0, signed=True, finest=-1)
    fixed: Values = {
        "PrtAlrms": 0,
        "NPrt": len(pcs.ports),
        "DCA": _raw(pcs.dc_current_a, a_sf),
        "DCW": _raw(pcs.dc_power_w, w_sf),
        "DCWhInj": round(pcs.dc_discharged_wh),
        "DCWhAbs": round(pcs.dc_charged_wh),
        "DCA_SF": a_sf,
        "DCV_SF": V_SF,
        "DCW_SF": w_sf,
        "DCWH_SF": 0,
        "Tmp_SF": TEMP_SF,
    }
    ports: list[Values] = [
        {
            "PrtTyp": ESS_PORT,
            "ID": port.index,
            "IDStr": port.name,
            "DCA": _raw(port.current_a, a_sf),
            "DCV": _raw(port.voltage_v, V_SF),
            "DCW": _raw(port.power_w, w_sf),
            "DCWhInj": round(port.discharged_wh),
            "DCWhAbs": round(port.charged_wh),
            "Tmp": _raw(port.temp_c, TEMP_SF),
            "DCSta": PORT_ON,
            "DCAlrm": 0,
        }
        for port in pcs.ports
    ]
    return fixed, ports


def meter_203(meter: MeterReading, rated_w: float) -> Values:
    w_sf = scale_factor_for(rated_w, signed=True, finest=0)
    a_sf = scale_factor_for(rated_w / 600.0, signed=True, finest=-1)
    values: Values = {
        "A": _raw(meter.current_a, a_sf),
        "A_SF": a_sf,
        "PhV": _raw(meter.voltage_ln_v, V_SF),
        "PPV": _raw(meter.voltage_ll_v, V_SF),
        "V_SF": V_SF,
        "Hz": _raw(meter.frequency_hz, HZ_SF_203),
        "Hz_SF": HZ_SF_203,
        "W": _raw(meter.power_w, w_sf),
        "W_SF": w_sf,
        "VA": _raw(meter.apparent_va, w_sf),
        "VA_SF": w_sf,
        "VAR": _raw(meter.reactive_var, w_sf),
        "VAR_SF": w_sf,
        "PF": _raw(meter.power_factor * 100.0, PF_SF_203),
        "PF_SF": PF_SF_203,
        "TotWhExp": _raw(meter.exported_wh, METER_WH_SF) % (1 << 32),
        "TotWhImp": _raw(meter.imported_wh, METER_WH_SF) % (1 << 32),
        "TotWh_SF": METER_WH_SF,
        "TotVAh_SF": METER_WH_SF,
        "TotVArh_SF": METER_WH_SF,
        "Evt": meter.event_bits,
    }
    for phase in ("A", "B", "C"):
        values[f"Aph{phase}"] = _raw(meter.current_a, a_sf)
        values[f"PhVph{phase}"] = _raw(meter.voltage_ln_v, V_SF)
        values[f"Wph{phase}"] = _raw(meter.power_w / 3.0, w_sf)
        values[f"VAph{phase}"] = _raw(meter.apparent_va / 3.0, w_sf)
        values[f"VARph{phase}"] = _raw(meter.reactive_var / 3.0, w_sf)
        values[f"PFph{phase}"] = _raw(meter.power_factor * 100.0, PF_SF_203)
    for pair in ("AB", "BC", "CA"):
        values[f"PhVph{pair}"] = _raw(meter.voltage_ll_v, V_SF)
    return values


def pcs_models(pcs: PcsReading) -> list[ModelValues]:
    """The PCS's models after the common model, in chain order."""
    fixed_714, ports = der_dc_714(pcs)
    return [
        (DER_AC_MEASUREMENT_701, der_ac_701(pcs), []),
        (DER_STORAGE_CAPACITY_713, der_storage_713(pcs), []),
        (DER_DC_MEASUREMENT_714, fixed_714, ports),
    ]


def meter_models(meter: MeterReading, rated_w: float) -> list[ModelValues]:
    return [(METER_WYE_203, meter_203(meter, rated_w), [])]
