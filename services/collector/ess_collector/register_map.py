"""Decoding a register-map device: points from a poll's registers and bits.

Raw values come from `ess_sunspec.registers.decode_value` (the one codec for
int/float/string in any word and byte order); this module adds what a vendor
map says on top: bits, "not implemented" sentinels, a SunSpec-style scale-
factor point, scale and offset, and the valid range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ess_collector.inventory import MapPoint, RegisterMap
from ess_collector.planning import RegisterImage, Span
from ess_collector.values import DecodedValues
from ess_common.model import ExtraValue, Quality
from ess_sunspec import DataType, apply_scale, decode_value

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


def decode_device(register_map: RegisterMap, image: RegisterImage) -> DecodedValues:
    """Fields and extras of one poll; points whose read failed are null (PARTIAL)."""
    decoded = DecodedValues()
    by_name = {point.name: point for point in register_map.points}
    scale_factor_points = register_map.scale_factor_points
    for point in register_map.points:
        if point.field is None and point.name in scale_factor_points:
            continue  # read for other points, not published itself
        scale_factor = None
        if point.sf is not None:
            scale_factor = decode_point(by_name[point.sf], image.get(by_name[point.sf].span))
        result = decode_point(point, image.get(point.span), scale_factor)
        if point.field is None:
            if result.value is not None:
                decoded.extras[point.name] = result.value
            decoded.quality |= result.flags & Quality.PARTIAL
            continue
        value = result.value
        decoded.set_field(point.field, None if isinstance(value, str) else value, result.flags)
    return decoded


def decode_point(
    point: MapPoint,
    raw: Sequence[int] | Sequence[bool] | None,
    scale_factor: PointValue | None = None,
) -> PointValue:
    """The physical value of one point (None with a flag when there is none)."""
    if raw is None:
        return MISSING
    if point.type == "bit":
        return PointValue(_bit(point, raw))
    data_type = point.data_type
    assert data_type is not None
    number = decode_value(
        data_type, [int(r) for r in raw], word_order=point.word_order, byte_order=point.byte_order
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
