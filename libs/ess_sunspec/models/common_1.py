"""SunSpec model 1: Common model: identity every SunSpec device starts with.

Point names, order, offsets, types, units and scale-factor points follow the
published SunSpec model definition (common, "Common").
Offsets count from the model's ID register.
"""

from __future__ import annotations

from ess_sunspec.model import ModelDef, Point
from ess_sunspec.model import PointType as T

COMMON_1 = ModelDef(
    model_id=1,
    name="common",
    label="Common",
    points=(
        Point("ID", 0, T.UINT16, mandatory=True),
        Point("L", 1, T.UINT16, mandatory=True),
        Point("Mn", 2, T.STRING, size=16, mandatory=True),
        Point("Md", 18, T.STRING, size=16, mandatory=True),
        Point("Opt", 34, T.STRING, size=8),
        Point("Vr", 42, T.STRING, size=8),
        Point("SN", 50, T.STRING, size=16, mandatory=True),
        Point("DA", 66, T.UINT16, writable=True),
        Point("Pad", 67, T.PAD),
    ),
)
