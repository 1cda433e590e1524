"""SunSpec model 803: Lithium-ion bank, with one repeating group per string (rack).

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (lithium_ion_bank, "Lithium-Ion Battery Bank Model").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import GroupDef, ModelDef, Point, Symbols
from ess_sunspec.model import PointType as T

STRST_SYMBOLS: Symbols = (
    ("STRING_ENABLED", 0),
    ("CONTACTOR_STATUS", 1),
)

STRCONFAIL_SYMBOLS: Symbols = (
    ("NO_FAILURE", 0),
    ("BUTTON_PUSHED", 1),
    ("STR_GROUND_FAULT", 2),
    ("OUTSIDE_VOLTAGE_RANGE", 3),
    ("STRING_NOT_ENABLED", 4),
    ("FUSE_OPEN", 5),
    ("CONTACTOR_FAILURE", 6),
    ("PRECHARGE_FAILURE", 7),
    ("STRING_FAULT", 8),
)

STRDISRSN_SYMBOLS: Symbols = (
    ("NONE", 0),
    ("FAULT", 1),
    ("MAINTENANCE", 2),
    ("EXTERNAL", 3),
    ("OTHER", 4),
)

STRCONST_SYMBOLS: Symbols = tuple((f"CONTACTOR_{i}", i) for i in range(31))

STREVT1_SYMBOLS: Symbols = (
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
    ("RESERVED_1", 24),
    ("OTHER_ALARM", 25),
    ("OTHER_WARNING", 26),
    ("RESERVED_2", 27),
    ("CONFIGURATION_ALARM", 28),
    ("CONFIGURATION_WARNING", 29),
)

STRSETENA_SYMBOLS: Symbols = (
    ("ENABLE_STRING", 1),
    ("DISABLE_STRING", 2),
)

STRSETCON_SYMBOLS: Symbols = (
    ("CONNECT_STRING", 1),
    ("DISCONNECT_STRING", 2),
)

LITHIUM_ION_BANK_803 = ModelDef(
    model_id=803,
    name="lithium_ion_bank",
    label="Lithium-Ion Battery Bank Model",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("NStr", 2, T.UINT16, mandatory=True),
        Point("NStrCon", 3, T.UINT16, mandatory=True),
        Point("ModTmpMax", 4, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
        Point("ModTmpMaxStr", 5, T.UINT16),
        Point("ModTmpMaxMod", 6, T.UINT16),
        Point("ModTmpMin", 7, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
        Point("ModTmpMinStr", 8, T.UINT16),
        Point("ModTmpMinMod", 9, T.UINT16),
        Point("ModTmpAvg", 10, T.INT16, units="C", sf="ModTmp_SF"),
        Point("StrVMax", 11, T.UINT16, units="V", sf="V_SF"),
        Point("StrVMaxStr", 12, T.UINT16),
        Point("StrVMin", 13, T.UINT16, units="V", sf="V_SF"),
        Point("StrVMinStr", 14, T.UINT16),
        Point("StrVAvg", 15, T.UINT16, units="V", sf="V_SF"),
        Point("StrAMax", 16, T.INT16, units="A", sf="A_SF"),
        Point("StrAMaxStr", 17, T.UINT16),
        Point("StrAMin", 18, T.INT16, units="A", sf="A_SF"),
        Point("StrAMinStr", 19, T.UINT16),
        Point("StrAAvg", 20, T.INT16, units="A", sf="A_SF"),
        Point("NCellBal", 21, T.UINT16),
        Point("CellV_SF", 22, T.SUNSSF, mandatory=True),
        Point("ModTmp_SF", 23, T.SUNSSF, mandatory=True),
        Point("A_SF", 24, T.SUNSSF, mandatory=True),
        Point("SoH_SF", 25, T.SUNSSF),
        Point("SoC_SF", 26, T.SUNSSF, mandatory=True),
        Point("V_SF", 27, T.SUNSSF),
    ),
    group=GroupDef(
        name="string",
        count_point="NStr",
        points=(
            Point("StrNMod", 0, T.UINT16, mandatory=True),
            Point("StrSt", 1, T.BITFIELD32, mandatory=True, symbols=STRST_SYMBOLS),
            Point("StrConFail", 3, T.ENUM16, symbols=STRCONFAIL_SYMBOLS),
            Point("StrSoC", 4, T.UINT16, units="%", sf="SoC_SF", mandatory=True),
            Point("StrSoH", 5, T.UINT16, units="%", sf="SoH_SF"),
            Point("StrA", 6, T.INT16, units="A", sf="A_SF", mandatory=True),
            Point("StrCellVMax", 7, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
            Point("StrCellVMaxMod", 8, T.UINT16),
            Point("StrCellVMin", 9, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
            Point("StrCellVMinMod", 10, T.UINT16),
            Point("StrCellVAvg", 11, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
            Point("StrModTmpMax", 12, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
            Point("StrModTmpMaxMod", 13, T.UINT16),
            Point("StrModTmpMin", 14, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
            Point("StrModTmpMinMod", 15, T.UINT16),
            Point("StrModTmpAvg", 16, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
            Point("StrDisRsn", 17, T.ENUM16, symbols=STRDISRSN_SYMBOLS),
            Point("StrConSt", 18, T.BITFIELD32, symbols=STRCONST_SYMBOLS),
            Point("StrEvt1", 20, T.BITFIELD32, mandatory=True, symbols=STREVT1_SYMBOLS),
            Point("StrEvt2", 22, T.BITFIELD32),
            Point("StrEvtVnd1", 24, T.BITFIELD32),
            Point("StrEvtVnd2", 26, T.BITFIELD32),
            Point("StrSetEna", 28, T.ENUM16, writable=True, symbols=STRSETENA_SYMBOLS),
            Point("StrSetCon", 29, T.ENUM16, writable=True, symbols=STRSETCON_SYMBOLS),
            Point("Pad1", 30, T.PAD, mandatory=True),
            Point("Pad2", 31, T.PAD, mandatory=True),
        ),
    ),
)
