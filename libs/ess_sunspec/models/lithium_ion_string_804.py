"""SunSpec model 804: Lithium-ion string (rack), with one repeating group per module.

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (lithium_ion_string, "Lithium-Ion String Model").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import GroupDef, ModelDef, Point, Symbols
from ess_sunspec.model import PointType as T

ST_SYMBOLS: Symbols = (
    ("STRING_ENABLED", 0),
    ("CONTACTOR_STATUS", 1),
)

CONFAIL_SYMBOLS: Symbols = (
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

CONST_SYMBOLS: Symbols = tuple((f"CONTACTOR_{i}", i) for i in range(31))

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
    ("RESERVED_1", 24),
    ("OTHER_ALARM", 25),
    ("OTHER_WARNING", 26),
    ("RESERVED_2", 27),
    ("CONFIGURATION_ALARM", 28),
    ("CONFIGURATION_WARNING", 29),
)

SETCON_SYMBOLS: Symbols = (
    ("CONNECT_STRING", 1),
    ("DISCONNECT_STRING", 2),
)

LITHIUM_ION_STRING_804 = ModelDef(
    model_id=804,
    name="lithium_ion_string",
    label="Lithium-Ion String Model",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("Idx", 2, T.UINT16, mandatory=True),
        Point("NMod", 3, T.UINT16, mandatory=True),
        Point("St", 4, T.BITFIELD32, mandatory=True, symbols=ST_SYMBOLS),
        Point("ConFail", 6, T.ENUM16, symbols=CONFAIL_SYMBOLS),
        Point("NCellBal", 7, T.UINT16),
        Point("SoC", 8, T.UINT16, units="%", sf="SoC_SF", mandatory=True),
        Point("DoD", 9, T.UINT16, units="%", sf="DoD_SF"),
        Point("NCyc", 10, T.UINT32),
        Point("SoH", 12, T.UINT16, units="%", sf="SoH_SF"),
        Point("A", 13, T.INT16, units="A", sf="A_SF", mandatory=True),
        Point("V", 14, T.UINT16, units="V", sf="V_SF"),
        Point("CellVMax", 15, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
        Point("CellVMaxMod", 16, T.UINT16),
        Point("CellVMin", 17, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
        Point("CellVMinMod", 18, T.UINT16),
        Point("CellVAvg", 19, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
        Point("ModTmpMax", 20, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
        Point("ModTmpMaxMod", 21, T.UINT16, mandatory=True),
        Point("ModTmpMin", 22, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
        Point("ModTmpMinMod", 23, T.UINT16, mandatory=True),
        Point("ModTmpAvg", 24, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
        Point("Pad1", 25, T.PAD, mandatory=True),
        Point("ConSt", 26, T.BITFIELD32, symbols=CONST_SYMBOLS),
        Point("Evt1", 28, T.BITFIELD32, mandatory=True, symbols=EVT1_SYMBOLS),
        Point("Evt2", 30, T.BITFIELD32),
        Point("EvtVnd1", 32, T.BITFIELD32),
        Point("EvtVnd2", 34, T.BITFIELD32),
        Point("SetEna", 36, T.ENUM16, writable=True),
        Point("SetCon", 37, T.ENUM16, writable=True, symbols=SETCON_SYMBOLS),
        Point("SoC_SF", 38, T.SUNSSF, mandatory=True),
        Point("SoH_SF", 39, T.SUNSSF),
        Point("DoD_SF", 40, T.SUNSSF),
        Point("A_SF", 41, T.SUNSSF, mandatory=True),
        Point("V_SF", 42, T.SUNSSF),
        Point("CellV_SF", 43, T.SUNSSF, mandatory=True),
        Point("ModTmp_SF", 44, T.SUNSSF, mandatory=True),
        Point("Pad2", 45, T.PAD, mandatory=True),
        Point("Pad3", 46, T.PAD, mandatory=True),
        Point("Pad4", 47, T.PAD, mandatory=True),
    ),
    group=GroupDef(
        name="lithium_ion_string_module",
        count_point="NMod",
        points=(
            Point("ModNCell", 0, T.UINT16, mandatory=True),
            Point("ModSoC", 1, T.UINT16, units="%", sf="SoC_SF"),
            Point("ModSoH", 2, T.UINT16, units="%", sf="SoH_SF"),
            Point("ModCellVMax", 3, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
            Point("ModCellVMaxCell", 4, T.UINT16),
            Point("ModCellVMin", 5, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
            Point("ModCellVMinCell", 6, T.UINT16),
            Point("ModCellVAvg", 7, T.UINT16, units="V", sf="CellV_SF", mandatory=True),
            Point("ModCellTmpMax", 8, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
            Point("ModCellTmpMaxCell", 9, T.UINT16),
            Point("ModCellTmpMin", 10, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
            Point("ModCellTmpMinCell", 11, T.UINT16),
            Point("ModCellTmpAvg", 12, T.INT16, units="C", sf="ModTmp_SF", mandatory=True),
            Point("Pad5", 13, T.PAD, mandatory=True),
            Point("Pad6", 14, T.PAD, mandatory=True),
            Point("Pad7", 15, T.PAD, mandatory=True),
        ),
    ),
)
