"""SunSpec model 714: DER DC measurement, with one repeating group per DC port.

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (DERMeasureDC, "DER DC Measurement").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import GroupDef, ModelDef, Point, Symbols
from ess_sunspec.model import PointType as T

PRTTYP_SYMBOLS: Symbols = (
    ("PV", 0),
    ("ESS", 1),
    ("EV", 2),
    ("INJ", 3),
    ("ABS", 4),
    ("BIDIR", 5),
    ("DC_DC", 6),
)

DCSTA_SYMBOLS: Symbols = (
    ("OFF", 0),
    ("ON", 1),
    ("WARNING", 2),
    ("ERROR", 3),
)

DCALRM_SYMBOLS: Symbols = (
    ("GROUND_FAULT", 0),
    ("INPUT_OVER_VOLTAGE", 1),
    ("DC_DISCONNECT", 3),
    ("CABINET_OPEN", 5),
    ("MANUAL_SHUTDOWN", 6),
    ("OVER_TEMP", 7),
    ("BLOWN_FUSE", 12),
    ("UNDER_TEMP", 13),
    ("MEMORY_LOSS", 14),
    ("ARC_DETECTION", 15),
    ("RESERVED", 19),
    ("TEST_FAILED", 20),
    ("INPUT_UNDER_VOLTAGE", 21),
    ("INPUT_OVER_CURRENT", 22),
)

DER_DC_MEASUREMENT_714 = ModelDef(
    model_id=714,
    name="DERMeasureDC",
    label="DER DC Measurement",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("PrtAlrms", 2, T.BITFIELD32),
        Point("NPrt", 4, T.UINT16),
        Point("DCA", 5, T.INT16, units="A", sf="DCA_SF"),
        Point("DCW", 6, T.INT16, units="W", sf="DCW_SF"),
        Point("DCWhInj", 7, T.UINT64, units="Wh", sf="DCWH_SF"),
        Point("DCWhAbs", 11, T.UINT64, units="Wh", sf="DCWH_SF"),
        Point("DCA_SF", 15, T.SUNSSF),
        Point("DCV_SF", 16, T.SUNSSF),
        Point("DCW_SF", 17, T.SUNSSF),
        Point("DCWH_SF", 18, T.SUNSSF),
        Point("Tmp_SF", 19, T.SUNSSF),
    ),
    group=GroupDef(
        name="Prt",
        count_point="NPrt",
        points=(
            Point("PrtTyp", 0, T.ENUM16, symbols=PRTTYP_SYMBOLS),
            Point("ID", 1, T.UINT16),
            Point("IDStr", 2, T.STRING, size=8),
            Point("DCA", 10, T.INT16, units="A", sf="DCA_SF"),
            Point("DCV", 11, T.UINT16, units="V", sf="DCV_SF"),
            Point("DCW", 12, T.INT16, units="W", sf="DCW_SF"),
            Point("DCWhInj", 13, T.UINT64, units="Wh", sf="DCWH_SF"),
            Point("DCWhAbs", 17, T.UINT64, units="Wh", sf="DCWH_SF"),
            Point("Tmp", 21, T.INT16, units="C", sf="Tmp_SF"),
            Point("DCSta", 22, T.ENUM16, symbols=DCSTA_SYMBOLS),
            Point("DCAlrm", 23, T.BITFIELD32, symbols=DCALRM_SYMBOLS),
        ),
    ),
)
