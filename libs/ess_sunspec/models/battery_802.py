"""SunSpec model 802: Battery base model: nameplate, SoC/SoH, voltage, current, events.

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (battery, "Battery Base Model").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import ModelDef, Point, Symbols
from ess_sunspec.model import PointType as T

CHAST_SYMBOLS: Symbols = (
    ("OFF", 1),
    ("EMPTY", 2),
    ("DISCHARGING", 3),
    ("CHARGING", 4),
    ("FULL", 5),
    ("HOLDING", 6),
    ("TESTING", 7),
)

LOCREMCTL_SYMBOLS: Symbols = (
    ("REMOTE", 0),
    ("LOCAL", 1),
)

TYP_SYMBOLS: Symbols = (
    ("NOT APPLICABLE_UNKNOWN", 0),
    ("LEAD_ACID", 1),
    ("NICKEL_METAL_HYDRATE", 2),
    ("NICKEL_CADMIUM", 3),
    ("LITHIUM_ION", 4),
    ("CARBON_ZINC", 5),
    ("ZINC_CHLORIDE", 6),
    ("ALKALINE", 7),
    ("RECHARGEABLE_ALKALINE", 8),
    ("SODIUM_SULFUR", 9),
    ("FLOW", 10),
    ("OTHER", 99),
)

STATE_SYMBOLS: Symbols = (
    ("DISCONNECTED", 1),
    ("INITIALIZING", 2),
    ("CONNECTED", 3),
    ("STANDBY", 4),
    ("SOC PROTECTION", 5),
    ("SUSPENDING", 6),
    ("FAULT", 99),
)

EVT1_SYMBOLS: Symbols = (
    ("COMMUNICATION_ERROR", 0),
    ("OVER_TEMP_ALARM", 1),
    ("OVER_TEMP_WARNING", 2),
    ("UNDER_TEMP_ALARM", 3),
    ("UNDER_TEMP_WARNING", 4),
    ("OVER_CHARGE_CURRENT_ALARM", 5),
    ("OVER_CHARGE_CURRENT_WARNING", 6),
    ("OVER_DISCHARGE_CURRENT_ALARM", 7),
    ("OVER_DISCHARGE_CURRENT_WARNING", 8),
    ("OVER_VOLT_ALARM", 9),
    ("OVER_VOLT_WARNING", 10),
    ("UNDER_VOLT_ALARM", 11),
    ("UNDER_VOLT_WARNING", 12),
    ("UNDER_SOC_MIN_ALARM", 13),
    ("UNDER_SOC_MIN_WARNING", 14),
    ("OVER_SOC_MAX_ALARM", 15),
    ("OVER_SOC_MAX_WARNING", 16),
    ("VOLTAGE_IMBALANCE_WARNING", 17),
    ("TEMPERATURE_IMBALANCE_ALARM", 18),
    ("TEMPERATURE_IMBALANCE_WARNING", 19),
    ("CONTACTOR_ERROR", 20),
    ("FAN_ERROR", 21),
    ("GROUND_FAULT", 22),
    ("OPEN_DOOR_ERROR", 23),
    ("CURRENT_IMBALANCE_WARNING", 24),
    ("OTHER_ALARM", 25),
    ("OTHER_WARNING", 26),
    ("RESERVED_1", 27),
    ("CONFIGURATION_ALARM", 28),
    ("CONFIGURATION_WARNING", 29),
)

REQINVSTATE_SYMBOLS: Symbols = (
    ("NO REQUEST", 0),
    ("START", 1),
    ("STOP", 2),
)

SETOP_SYMBOLS: Symbols = (
    ("CONNECT", 1),
    ("DISCONNECT", 2),
)

SETINVSTATE_SYMBOLS: Symbols = (
    ("INVERTER_STOPPED", 1),
    ("INVERTER_STANDBY", 2),
    ("INVERTER_STARTED", 3),
)

BATTERY_802 = ModelDef(
    model_id=802,
    name="battery",
    label="Battery Base Model",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("AHRtg", 2, T.UINT16, units="Ah", sf="AHRtg_SF", mandatory=True),
        Point("WHRtg", 3, T.UINT16, units="Wh", sf="WHRtg_SF", mandatory=True),
        Point("WChaRteMax", 4, T.UINT16, units="W", sf="WChaDisChaMax_SF", mandatory=True),
        Point("WDisChaRteMax", 5, T.UINT16, units="W", sf="WChaDisChaMax_SF", mandatory=True),
        Point("DisChaRte", 6, T.UINT16, units="%WHRtg", sf="DisChaRte_SF"),
        Point("SoCMax", 7, T.UINT16, units="%WHRtg", sf="SoC_SF"),
        Point("SoCMin", 8, T.UINT16, units="%WHRtg", sf="SoC_SF"),
        Point("SoCRsvMax", 9, T.UINT16, units="%WHRtg", sf="SoC_SF", writable=True),
        Point("SoCRsvMin", 10, T.UINT16, units="%WHRtg", sf="SoC_SF", writable=True),
        Point("SoC", 11, T.UINT16, units="%WHRtg", sf="SoC_SF", mandatory=True),
        Point("DoD", 12, T.UINT16, units="%", sf="DoD_SF"),
        Point("SoH", 13, T.UINT16, units="%", sf="SoH_SF"),
        Point("NCyc", 14, T.UINT32),
        Point("ChaSt", 16, T.ENUM16, symbols=CHAST_SYMBOLS),
        Point("LocRemCtl", 17, T.ENUM16, mandatory=True, symbols=LOCREMCTL_SYMBOLS),
        Point("Hb", 18, T.UINT16),
        Point("CtrlHb", 19, T.UINT16, writable=True),
        Point("AlmRst", 20, T.UINT16, mandatory=True, writable=True),
        Point("Typ", 21, T.ENUM16, mandatory=True, symbols=TYP_SYMBOLS),
        Point("State", 22, T.ENUM16, mandatory=True, symbols=STATE_SYMBOLS),
        Point("StateVnd", 23, T.ENUM16),
        Point("WarrDt", 24, T.UINT32),
        Point("Evt1", 26, T.BITFIELD32, mandatory=True, symbols=EVT1_SYMBOLS),
        Point("Evt2", 28, T.BITFIELD32, mandatory=True),
        Point("EvtVnd1", 30, T.BITFIELD32, mandatory=True),
        Point("EvtVnd2", 32, T.BITFIELD32, mandatory=True),
        Point("V", 34, T.UINT16, units="V", sf="V_SF", mandatory=True),
        Point("VMax", 35, T.UINT16, units="V", sf="V_SF"),
        Point("VMin", 36, T.UINT16, units="V", sf="V_SF"),
        Point("CellVMax", 37, T.UINT16, units="V", sf="CellV_SF"),
        Point("CellVMaxStr", 38, T.UINT16),
        Point("CellVMaxMod", 39, T.UINT16),
        Point("CellVMin", 40, T.UINT16, units="V", sf="CellV_SF"),
        Point("CellVMinStr", 41, T.UINT16),
        Point("CellVMinMod", 42, T.UINT16),
        Point("CellVAvg", 43, T.UINT16, units="V", sf="CellV_SF"),
        Point("A", 44, T.INT16, units="A", sf="A_SF", mandatory=True),
        Point("AChaMax", 45, T.UINT16, units="A", sf="AMax_SF"),
        Point("ADisChaMax", 46, T.UINT16, units="A", sf="AMax_SF"),
        Point("W", 47, T.INT16, units="W", sf="W_SF", mandatory=True),
        Point("ReqInvState", 48, T.ENUM16, symbols=REQINVSTATE_SYMBOLS),
        Point("ReqW", 49, T.INT16, units="W", sf="W_SF"),
        Point("SetOp", 50, T.ENUM16, mandatory=True, writable=True, symbols=SETOP_SYMBOLS),
        Point(
            "SetInvState",
            51,
            T.ENUM16,
            mandatory=True,
            writable=True,
            symbols=SETINVSTATE_SYMBOLS,
        ),
        Point("AHRtg_SF", 52, T.SUNSSF, mandatory=True),
        Point("WHRtg_SF", 53, T.SUNSSF, mandatory=True),
        Point("WChaDisChaMax_SF", 54, T.SUNSSF, mandatory=True),
        Point("DisChaRte_SF", 55, T.SUNSSF),
        Point("SoC_SF", 56, T.SUNSSF, mandatory=True),
        Point("DoD_SF", 57, T.SUNSSF),
        Point("SoH_SF", 58, T.SUNSSF),
        Point("V_SF", 59, T.SUNSSF, mandatory=True),
        Point("CellV_SF", 60, T.SUNSSF, mandatory=True),
        Point("A_SF", 61, T.SUNSSF, mandatory=True),
        Point("AMax_SF", 62, T.SUNSSF, mandatory=True),
        Point("W_SF", 63, T.SUNSSF),
    ),
)
