"""Decoded values to a `Reading`: types, physical limits and the quality flags.

Both decoders (SunSpec and register map) hand over plain dicts of field values
plus the quality flags they raised; this module applies the rules every
reading follows: integers stay integers, non-finite numbers and values outside
a field's physical range become null with a flag, and a reading taken after
its second has passed is flagged LATE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import get_args

from ess_common.model import VALUES_BY_TABLE, DeviceId, ExtraValue, Quality, Reading, Table

Number = int | float
FieldValue = int | float | None

# Physical limits of fields whose range is known whatever the device.
FIELD_LIMITS: dict[str, tuple[float, float]] = {
    "soc_pct": (0.0, 100.0),
    "soh_pct": (0.0, 100.0),
    "humidity_pct": (0.0, 100.0),
    "power_factor": (-1.0, 1.0),
}


@cache
def is_integer_field(table: Table, name: str) -> bool:
    annotation = VALUES_BY_TABLE[table].model_fields[name].annotation
    return int in get_args(annotation) or annotation is int


@dataclass
class DecodedValues:
    """What a decoder made of one poll: fields, extras and the flags it raised."""

    values: dict[str, FieldValue] = field(default_factory=dict)
    extras: dict[str, ExtraValue] = field(default_factory=dict)
    quality: Quality = Quality.GOOD

    def set_field(self, name: str, value: FieldValue, flags: Quality = Quality.GOOD) -> None:
        self.values[name] = value
        if flags:  # flag arithmetic is slow in Python: skip the common no-flag case
            self.quality |= flags


def build_reading(device: DeviceId, slot: int, read_at: float, decoded: DecodedValues) -> Reading:
    """The reading of `device` for the one-second `slot` (epoch seconds)."""
    quality = decoded.quality
    values: dict[str, FieldValue] = {}
    integers = _integer_fields(device.table)
    flags = 0
    for name, value in decoded.values.items():  # types, finiteness and limits
        if value is None:
            values[name] = None
        elif name in integers:
            values[name] = int(value)
        else:
            number = float(value)
            limits = FIELD_LIMITS.get(name)
            if not math.isfinite(number):
                values[name] = None
                flags |= Quality.NOT_IMPLEMENTED
            elif limits is not None and not limits[0] <= number <= limits[1]:
                values[name] = None
                flags |= Quality.OUT_OF_RANGE
            else:
                values[name] = number
    if flags:
        quality |= flags
    if read_at >= slot + 1:
        quality |= Quality.LATE
    # The measurements are validated; the envelope is built from values that satisfy
    # Reading's rules by construction (UTC, a whole-second slot), so it skips them.
    return Reading.model_construct(
        device=device,
        ts=datetime.fromtimestamp(slot, UTC),
        read_at=datetime.fromtimestamp(read_at, UTC),
        quality=quality,
        values=VALUES_BY_TABLE[device.table](**values),
        extras=decoded.extras,
    )


@cache
def _integer_fields(table: Table) -> frozenset[str]:
    return frozenset(n for n in VALUES_BY_TABLE[table].model_fields if is_integer_field(table, n))
