"""SunSpec model 701: DER AC measurement: power, voltage, frequency, energy.

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (DERMeasureAC, "DER AC Measurement").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import ModelDef, Point, Symbols
from ess_sunspec.model import PointType as T

ACTYPE_SYMBOLS: Symbols = (
    ("SINGLE_PHASE", 0),
    ("SPLIT_PHASE", 1),
    ("THREE_PHASE", 2),
)

ST_SYMBOLS: Symbols = (
    ("OFF", 0),
    ("ON", 1),
)

INVST_SYMBOLS: Symbols = (
    ("OFF", 0),
    ("SLEEPING", 1),
    ("STARTING", 2),
    ("RUNNING", 3),
    ("THROTTLED", 4),
    ("SHUTTING_DOWN", 5),
    ("FAULT", 6),
    ("STANDBY", 7),
)

CONNST_SYMBOLS: Symbols = (
    ("DISCONNECTED", 0),
    ("CONNECTED", 1),
)

ALRM_SYMBOLS: Symbols = (
    ("GROUND_FAULT", 0),
    ("DC_OVER_VOLT", 1),
    ("AC_DISCONNECT", 2),
    ("DC_DISCONNECT", 3),
    ("GRID_DISCONNECT", 4),
    ("CABINET_OPEN", 5),
    ("MANUAL_SHUTDOWN", 6),
    ("OVER_TEMP", 7),
    ("OVER_FREQUENCY", 8),
    ("UNDER_FREQUENCY", 9),
    ("AC_OVER_VOLT", 10),
    ("AC_UNDER_VOLT", 11),
    ("BLOWN_STRING_FUSE", 12),
    ("UNDER_TEMP", 13),
    ("MEMORY_LOSS", 14),
    ("HW_TEST_FAILURE", 15),
    ("MANUFACTURER_ALRM", 16),
)

DERMODE_SYMBOLS: Symbols = (
    ("GRID_FOLLOWING", 0),
    ("GRID_FORMING", 1),
    ("PV_CLIPPED", 2),
)

THROTSRC_SYMBOLS: Symbols = (
    ("MAX_W", 0),
    ("FIXED_W", 1),
    ("FIXED_VAR", 2),
    ("FIXED_PF", 3),
    ("VOLT_VAR", 4),
    ("FREQ_WATT", 5),
    ("DYN_REACT_CURR", 6),
    ("LVRT", 7),
    ("HVRT", 8),
    ("WATT_VAR", 9),
    ("VOLT_WATT", 10),
    ("SCHEDULED", 11),
    ("LFRT", 12),
    ("HFRT", 13),
    ("DERATED", 14),
)

DER_AC_MEASUREMENT_701 = ModelDef(
    model_id=701,
    name="DERMeasureAC",
    label="DER AC Measurement",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("ACType", 2, T.ENUM16, mandatory=True, symbols=ACTYPE_SYMBOLS),
        Point("St", 3, T.ENUM16, symbols=ST_SYMBOLS),
        Point("InvSt", 4, T.ENUM16, symbols=INVST_SYMBOLS),
        Point("ConnSt", 5, T.ENUM16, symbols=CONNST_SYMBOLS),
        Point("Alrm", 6, T.BITFIELD32, symbols=ALRM_SYMBOLS),
        Point("DERMode", 8, T.BITFIELD32, symbols=DERMODE_SYMBOLS),
        Point("W", 10, T.INT16, units="W", sf="W_SF"),
        Point("VA", 11, T.INT16, units="VA", sf="VA_SF"),
        Point("Var", 12, T.INT16, units="Var", sf="Var_SF"),
        Point("PF", 13, T.INT16, sf="PF_SF"),
        Point("A", 14, T.INT16, units="A", sf="A_SF"),
        Point("LLV", 15, T.UINT16, units="V", sf="V_SF"),
        Point("LNV", 16, T.UINT16, units="V", sf="V_SF"),
        Point("Hz", 17, T.UINT32, units="Hz", sf="Hz_SF"),
        Point("TotWhInj", 19, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotWhAbs", 23, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotVarhInj", 27, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("TotVarhAbs", 31, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("TmpAmb", 35, T.INT16, units="C", sf="Tmp_SF"),
        Point("TmpCab", 36, T.INT16, units="C", sf="Tmp_SF"),
        Point("TmpSnk", 37, T.INT16, units="C", sf="Tmp_SF"),
        Point("TmpTrns", 38, T.INT16, units="C", sf="Tmp_SF"),
        Point("TmpSw", 39, T.INT16, units="C", sf="Tmp_SF"),
        Point("TmpOt", 40, T.INT16, units="C", sf="Tmp_SF"),
        Point("WL1", 41, T.INT16, units="W", sf="W_SF"),
        Point("VAL1", 42, T.INT16, units="VA", sf="VA_SF"),
        Point("VarL1", 43, T.INT16, units="Var", sf="Var_SF"),
        Point("PFL1", 44, T.INT16, sf="PF_SF"),
        Point("AL1", 45, T.INT16, units="A", sf="A_SF"),
        Point("VL1L2", 46, T.UINT16, units="V", sf="V_SF"),
        Point("VL1", 47, T.UINT16, units="V", sf="V_SF"),
        Point("TotWhInjL1", 48, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotWhAbsL1", 52, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotVarhInjL1", 56, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("TotVarhAbsL1", 60, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("WL2", 64, T.INT16, units="W", sf="W_SF"),
        Point("VAL2", 65, T.INT16, units="VA", sf="VA_SF"),
        Point("VarL2", 66, T.INT16, units="Var", sf="Var_SF"),
        Point("PFL2", 67, T.INT16, sf="PF_SF"),
        Point("AL2", 68, T.INT16, units="A", sf="A_SF"),
        Point("VL2L3", 69, T.UINT16, units="V", sf="V_SF"),
        Point("VL2", 70, T.UINT16, units="V", sf="V_SF"),
        Point("TotWhInjL2", 71, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotWhAbsL2", 75, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotVarhInjL2", 79, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("TotVarhAbsL2", 83, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("WL3", 87, T.INT16, units="W", sf="W_SF"),
        Point("VAL3", 88, T.INT16, units="VA", sf="VA_SF"),
        Point("VarL3", 89, T.INT16, units="Var", sf="Var_SF"),
        Point("PFL3", 90, T.INT16, sf="PF_SF"),
        Point("AL3", 91, T.INT16, units="A", sf="A_SF"),
        Point("VL3L1", 92, T.UINT16, units="V", sf="V_SF"),
        Point("VL3", 93, T.UINT16, units="V", sf="V_SF"),
        Point("TotWhInjL3", 94, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotWhAbsL3", 98, T.UINT64, units="Wh", sf="TotWh_SF"),
        Point("TotVarhInjL3", 102, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("TotVarhAbsL3", 106, T.UINT64, units="Varh", sf="TotVarh_SF"),
        Point("ThrotPct", 110, T.UINT16, units="Pct"),
        Point("ThrotSrc", 111, T.BITFIELD32, symbols=THROTSRC_SYMBOLS),
        Point("A_SF", 113, T.SUNSSF),
        Point("V_SF", 114, T.SUNSSF),
        Point("Hz_SF", 115, T.SUNSSF),
        Point("W_SF", 116, T.SUNSSF),
        Point("PF_SF", 117, T.SUNSSF),
        Point("VA_SF", 118, T.SUNSSF),
        Point("Var_SF", 119, T.SUNSSF),
        Point("TotWh_SF", 120, T.SUNSSF),
        Point("TotVarh_SF", 121, T.SUNSSF),
        Point("Tmp_SF", 122, T.SUNSSF),
        Point("MnAlrmInfo", 123, T.STRING, size=32),
    ),
)
