"""SunSpec model blocks decoded with one `struct` call each (the hot path).

`ess_sunspec.decode_point` decodes one point at a time through the generic
register codec: right, and the largest cost of a poll at a thousand devices
a second. Here each model's fixed block and repeating group gets, once, a struct format that
unpacks every point at once (integers unsigned, then the sentinel and sign
rules of `decode_point`); strings still go through `decode_point`. The unit
tests check this decoder against `decode_point` on every model the
simulator serves, sentinels included.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ess_sunspec import (
    MODELS,
    DecodedModel,
    ModelDef,
    Point,
    PointType,
    PointValue,
    SunSpecError,
    decode_point,
)
from ess_sunspec.codec import NOT_IMPLEMENTED

_SIGNED = frozenset({PointType.INT16, PointType.SUNSSF, PointType.INT32, PointType.INT64})
_UNSIGNED_FORMAT = {1: "H", 2: "I", 4: "Q"}
_INT, _FLOAT, _STRING = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    kind: int
    sentinel: int  # raw unsigned "not implemented" value (integers)
    half: int  # signed types: raw values from here on are negative; else 0
    full: int
    point: Point


@dataclass(frozen=True, slots=True)
class BlockDecoder:
    unpack: struct.Struct
    slots: tuple[_Slot, ...]

    def decode(self, registers: Sequence[int] | Sequence[bool]) -> dict[str, PointValue | None]:
        """{point name: value or None} of a block's registers (pads left out)."""
        raw = self.unpack.unpack_from(struct.pack(f">{len(registers)}H", *registers))
        out: dict[str, PointValue | None] = {}
        for slot, value in zip(self.slots, raw, strict=True):
            kind = slot.kind
            if kind == _INT:
                if value == slot.sentinel:
                    out[slot.name] = None
                elif slot.half and value >= slot.half:
                    out[slot.name] = value - slot.full
                else:
                    out[slot.name] = value
            elif kind == _FLOAT:
                out[slot.name] = None if math.isnan(value) else value
            else:
                point = slot.point
                words = struct.unpack(f">{point.size}H", value)
                out[slot.name] = decode_point(point, words)
        return out


def decode_model_fast(
    model: ModelDef, registers: Sequence[int] | Sequence[bool], with_groups: bool
) -> DecodedModel:
    """`ess_sunspec.decode_model` with the block decoders (pads left out); without
    groups only the fixed block was read."""
    if not with_groups:
        return DecodedModel(model, block_decoder(model.model_id, False).decode(registers))
    if len(registers) < 2 or registers[0] != model.model_id:
        raise SunSpecError(f"registers do not start with model {model.model_id}")
    length = int(registers[1])
    fixed_length = model.fixed_length
    if len(registers) < length + 2 or length + 2 < fixed_length:
        raise SunSpecError(f"model {model.model_id}: length {length} does not fit")
    fixed = block_decoder(model.model_id, False).decode(registers[:fixed_length])
    groups: list[dict[str, PointValue | None]] = []
    if model.group is not None:
        size = model.group.length
        count, rest = divmod(length + 2 - fixed_length, size)
        if rest:
            raise SunSpecError(f"model {model.model_id}: length {length} leaves a partial group")
        decoder = block_decoder(model.model_id, True)
        for start in range(fixed_length, fixed_length + count * size, size):
            groups.append(decoder.decode(registers[start : start + size]))
    return DecodedModel(model=model, fixed=fixed, groups=groups)


@functools.cache
def block_decoder(model_id: int, group: bool) -> BlockDecoder:
    """The decoder of a model's fixed block (or of one of its repeating groups)."""
    model = MODELS[model_id]
    points = model.group.points if group and model.group is not None else model.points
    fmt = [">"]
    slots: list[_Slot] = []
    for point in points:
        if point.type is PointType.PAD:
            fmt.append(f"{2 * point.size}x")
            continue
        if point.type is PointType.STRING:
            fmt.append(f"{2 * point.size}s")
            slots.append(_Slot(point.name, _STRING, 0, 0, 0, point))
        elif point.type in (PointType.FLOAT32, PointType.FLOAT64):
            fmt.append("f" if point.type is PointType.FLOAT32 else "d")
            slots.append(_Slot(point.name, _FLOAT, 0, 0, 0, point))
        else:
            fmt.append(_UNSIGNED_FORMAT[point.size])
            bits = 16 * point.size
            half = 1 << (bits - 1) if point.type in _SIGNED else 0
            sentinel = NOT_IMPLEMENTED[point.type]
            slots.append(_Slot(point.name, _INT, sentinel, half, 1 << bits, point))
    return BlockDecoder(struct.Struct("".join(fmt)), tuple(slots))
