"""SunSpec model 713: DER storage capacity: energy rating, available energy, SoC.

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (DERStorageCapacity, "DER Storage Capacity").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import ModelDef, Point, Symbols
from ess_sunspec.model import PointType as T

STA_SYMBOLS: Symbols = (
    ("OK", 0),
    ("WARNING", 1),
    ("ERROR", 2),
)

DER_STORAGE_CAPACITY_713 = ModelDef(
    model_id=713,
    name="DERStorageCapacity",
    label="DER Storage Capacity",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("WHRtg", 2, T.UINT16, units="WH", sf="WH_SF"),
        Point("WHAvail", 3, T.UINT16, units="WH", sf="WH_SF"),
        Point("SoC", 4, T.UINT16, units="Pct", sf="Pct_SF"),
        Point("SoH", 5, T.UINT16, units="Pct", sf="Pct_SF"),
        Point("Sta", 6, T.ENUM16, symbols=STA_SYMBOLS),
        Point("WH_SF", 7, T.SUNSSF),
        Point("Pct_SF", 8, T.SUNSSF),
    ),
)
