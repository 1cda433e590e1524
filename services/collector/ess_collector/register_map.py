"""Decoding a register-map device: points from a poll's registers and bits.

Raw values come from `ess_sunspec.registers.decode_value` (the one codec for
int/float/string in any word and byte order); this module adds what a vendor
map says on top: bits, "not implemented" sentinels, a SunSpec-style scale-
factor point, scale and offset, and the valid range.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ess_collector.inventory import MapPoint, RegisterMap
from ess_collector.planning import RegisterImage, Span
from ess_collector.values import DecodedValues
from ess_common.model import ExtraValue, Quality
from ess_sunspec import ByteOrder, DataType, WordOrder, apply_scale, decode_value

# The logical (decoded) value that means "not implemented", per integer type.
INTEGER_SENTINELS: dict[DataType, int] = {
    DataType.INT16: -0x8000,
    DataType.UINT16: 0xFFFF,
    DataType.INT32: -0x8000_0000,
    DataType.UINT32: 0xFFFF_FFFF,
    DataType.INT64: -0x8000_0000_0000_0000,
    DataType.UINT64: 0xFFFF_FFFF_FFFF_FFFF,
}
FLOAT32_SIGNIFICANT_DIGITS = 7  # a float32 carries ~7 digits; the rest is binary noise
_DECIMALS = 9  # scaled results are rounded here: 691 * 0.1 reads 69.1, not 69.10000000000001


@dataclass(frozen=True, slots=True)
class PointValue:
    value: ExtraValue
    flags: Quality = Quality.GOOD


MISSING = PointValue(None, Quality.PARTIAL)  # the read covering the point failed


def spans(register_map: RegisterMap) -> list[Span]:
    return [point.span for point in register_map.points]


@dataclass(frozen=True, slots=True)
class _PointPlan:
    point: MapPoint
    span: Span
    data_type: DataType | None
    scale_factor: tuple[MapPoint, Span, DataType | None] | None
    number: NumberDecoder | None  # numeric types: registers -> raw number


NumberDecoder = Callable[[Sequence[int] | Sequence[bool]], int | float]
_STRUCT_CODES = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}


@functools.cache
def number_decoder(
    data_type: DataType, word_order: WordOrder, byte_order: ByteOrder
) -> NumberDecoder:
    """`ess_sunspec.decode_value` for one numeric type and order, as two struct calls
    (the unit tests check it against decode_value)."""
    code = _STRUCT_CODES[data_type]
    size = struct.calcsize(code) // 2
    words = struct.Struct(f"{'>' if byte_order is ByteOrder.BIG else '<'}{size}H")
    value = struct.Struct(">" + code)
    reverse = word_order is WordOrder.LITTLE

    def decode(registers: Sequence[int] | Sequence[bool]) -> int | float:
        if len(registers) != size:
            raise ValueError(f"{data_type.value} needs {size} registers, got {len(registers)}")
        ordered = registers[::-1] if reverse else registers
        number: int | float = value.unpack(words.pack(*ordered))[0]
        return number

    return decode


class CompiledMap:
    """A map's points with their spans and scale-factor points looked up once
    (pydantic properties and name look-ups are not free at thousands of polls a second)."""

    def __init__(self, register_map: RegisterMap) -> None:
        by_name = {point.name: point for point in register_map.points}
        skipped = register_map.scale_factor_points
        self.points = tuple(
            _PointPlan(
                point,
                point.span,
                point.data_type,
                (by_name[point.sf], by_name[point.sf].span, by_name[point.sf].data_type)
                if point.sf is not None
                else None,
                _number_decoder_of(point),
            )
            for point in register_map.points
            if not (point.field is None and point.name in skipped)  # read for others only
        )


def _number_decoder_of(point: MapPoint) -> NumberDecoder | None:
    data_type = point.data_type
    if data_type is None or data_type is DataType.STRING:
        return None
    return number_decoder(data_type, point.word_order, point.byte_order)


def decode_device(register_map: RegisterMap | CompiledMap, image: RegisterImage) -> DecodedValues:
    """Fields and extras of one poll; points whose read failed are null (PARTIAL)."""
    compiled = register_map if isinstance(register_map, CompiledMap) else CompiledMap(register_map)
    decoded = DecodedValues()
    for plan in compiled.points:
        point = plan.point
        scale_factor = None
        if plan.scale_factor is not None:
            sf_point, sf_span, sf_type = plan.scale_factor
            scale_factor = decode_point(sf_point, image.get(sf_span), data_type=sf_type)
        result = decode_point(
            point, image.get(plan.span), scale_factor, plan.data_type, plan.number
        )
        if point.field is None:
            if result.value is not None:
                decoded.extras[point.name] = result.value
            if result.flags:
                decoded.quality |= result.flags & Quality.PARTIAL
            continue
        value = result.value
        decoded.set_field(point.field, None if isinstance(value, str) else value, result.flags)
    return decoded


def decode_point(
    point: MapPoint,
    raw: Sequence[int] | Sequence[bool] | None,
    scale_factor: PointValue | None = None,
    data_type: DataType | None = None,
    number_of: NumberDecoder | None = None,
) -> PointValue:
    """The physical value of one point (None with a flag when there is none);
    `data_type` and `number_of` (its decoder) are the point's, when the caller has them."""
    if raw is None:
        return MISSING
    if point.type == "bit":
        return PointValue(_bit(point, raw))
    data_type = data_type or point.data_type
    assert data_type is not None
    if number_of is not None:
        number: int | float | str = number_of(raw)
    else:
        number = decode_value(
            data_type, raw, word_order=point.word_order, byte_order=point.byte_order
        )
    if isinstance(number, str):
        return PointValue(number or None)
    if point.sentinels and _is_sentinel(data_type, number):
        return PointValue(None, Quality.NOT_IMPLEMENTED)
    if point.mask is not None and isinstance(number, int):
        return PointValue(number & point.mask)
    if data_type is DataType.FLOAT32:
        number = float(f"{number:.{FLOAT32_SIGNIFICANT_DIGITS}g}")
    return _physical(point, number, scale_factor)


def _physical(point: MapPoint, number: int | float, scale_factor: PointValue | None) -> PointValue:
    """raw * 10**sf * scale + offset, if in range."""
    if scale_factor is not None:
        if not isinstance(scale_factor.value, int):
            flag = Quality.PARTIAL if scale_factor is MISSING else Quality.SCALE_FACTOR_INVALID
            return PointValue(None, flag)
        scaled = apply_scale(number, scale_factor.value)
        assert scaled is not None  # both operands are numbers here
        number = scaled
    value = _scaled(point, number)
    if not _within(point, value):
        return PointValue(None, Quality.OUT_OF_RANGE)
    return PointValue(value)


def _bit(point: MapPoint, raw: Sequence[int] | Sequence[bool]) -> bool:
    if point.space.holds_bits:
        return bool(raw[0])
    assert point.bit is not None
    return bool(int(raw[0]) >> point.bit & 1)


def _is_sentinel(data_type: DataType, number: int | float) -> bool:
    if isinstance(number, float):
        return math.isnan(number)
    return INTEGER_SENTINELS.get(data_type) == number


def _scaled(point: MapPoint, number: int | float) -> int | float:
    if isinstance(number, int) and point.scale == 1 and point.offset == 0:
        return number
    return round(number * point.scale + point.offset, _DECIMALS)


def _within(point: MapPoint, value: int | float) -> bool:
    low = -math.inf if point.valid_min is None else point.valid_min
    high = math.inf if point.valid_max is None else point.valid_max
    return low <= value <= high
