"""Encode and decode SunSpec points and whole models to and from registers.

A value of None stands for "not implemented": it encodes to the type's
sentinel (int16 0x8000, uint16 0xFFFF, acc 0, float NaN, string all zero ...)
and sentinels decode back to None, so a collector never mistakes one for a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ess_sunspec.model import FIXED_SIZES, GroupDef, ModelDef, Point, PointType, SunSpecError
from ess_sunspec.registers import DataType, decode_value, encode_value

PointValue = int | float | str
PAD_VALUE = 0x8000

# Raw unsigned register value that means "not implemented", per type.
NOT_IMPLEMENTED: dict[PointType, int] = {
    PointType.INT16: 0x8000,
    PointType.SUNSSF: 0x8000,
    PointType.UINT16: 0xFFFF,
    PointType.ENUM16: 0xFFFF,
    PointType.BITFIELD16: 0xFFFF,
    PointType.ACC16: 0,
    PointType.INT32: 0x8000_0000,
    PointType.UINT32: 0xFFFF_FFFF,
    PointType.ENUM32: 0xFFFF_FFFF,
    PointType.BITFIELD32: 0xFFFF_FFFF,
    PointType.ACC32: 0,
    PointType.IPADDR: 0,
    PointType.INT64: 0x8000_0000_0000_0000,
    PointType.UINT64: 0xFFFF_FFFF_FFFF_FFFF,
    PointType.ACC64: 0,
    PointType.FLOAT32: 0x7FC0_0000,
    PointType.FLOAT64: 0x7FF8_0000_0000_0000,
}

_SIGNED = {PointType.INT16, PointType.SUNSSF, PointType.INT32, PointType.INT64}
_FLOATS = {PointType.FLOAT32: DataType.FLOAT32, PointType.FLOAT64: DataType.FLOAT64}


# Integer range per (type, size), computed once: encoding runs for every point of
# every device every second in the simulator.
_INT_RANGES: dict[PointType, tuple[int, int]] = {}
for _type, _size in FIXED_SIZES.items():
    _bits = 16 * _size
    _INT_RANGES[_type] = (
        (-(1 << (_bits - 1)), (1 << (_bits - 1)) - 1) if _type in _SIGNED else (0, (1 << _bits) - 1)
    )


_ONE_REGISTER_INTS: dict[PointType, tuple[int, int]] = {
    point_type: _INT_RANGES[point_type]
    for point_type, size in FIXED_SIZES.items()
    if size == 1 and point_type is not PointType.PAD
}


def _unsigned_words(number: int, size: int) -> list[int]:
    if size == 1:
        return [number & 0xFFFF]
    return [(number >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def _unsigned_number(registers: Sequence[int]) -> int:
    number = 0
    for register in registers:
        number = (number << 16) | register
    return number


def encode_point(point: Point, value: PointValue | None) -> list[int]:
    """Registers for one point; None gives the not-implemented sentinel."""
    if point.type is PointType.PAD:
        return [PAD_VALUE]
    if point.type is PointType.STRING:
        text = "" if value is None else str(value)
        return encode_value(DataType.STRING, text, string_registers=point.size)
    if value is None:
        return _unsigned_words(NOT_IMPLEMENTED[point.type], point.size)
    if point.type in _FLOATS:
        return encode_value(_FLOATS[point.type], float(value))
    if not isinstance(value, int):
        raise SunSpecError(f"{point.name}: {point.type} needs an int, got {value!r}")
    low, high = _INT_RANGES[point.type]
    if not low <= value <= high:
        raise SunSpecError(f"{point.name}: {value} out of range for {point.type}")
    return _unsigned_words(value, point.size)


def decode_point(point: Point, registers: Sequence[int]) -> PointValue | None:
    """Value of one point, or None when the device marks it not implemented."""
    if len(registers) != point.size:
        raise SunSpecError(f"{point.name} needs {point.size} registers, got {len(registers)}")
    if point.type is PointType.PAD:
        return None
    if point.type is PointType.STRING:
        text = decode_value(DataType.STRING, registers)
        return str(text) or None
    if point.type in _FLOATS:
        number = float(decode_value(_FLOATS[point.type], registers))
        return None if math.isnan(number) else number
    raw = _unsigned_number(registers)
    if raw == NOT_IMPLEMENTED[point.type]:
        return None
    if point.type in _SIGNED and raw >= 1 << (16 * point.size - 1):
        raw -= 1 << (16 * point.size)
    return raw


def apply_scale(value: PointValue | None, scale_factor: PointValue | None) -> float | None:
    """value * 10**sf; None when either is not implemented."""
    if value is None or isinstance(value, str):
        return None
    if scale_factor is None or isinstance(scale_factor, str):
        return None
    exponent = int(scale_factor)
    # Divide for negative exponents so 3328 * 10**-3 reads 3.328, not 3.3280000000000003.
    return float(value) / 10.0**-exponent if exponent < 0 else float(value) * 10.0**exponent


def to_raw(value: float, scale_factor: int) -> int:
    """The integer a device stores for `value` under `scale_factor`."""
    return round(value / 10.0**scale_factor)


def scale_factor_for(max_abs: float, *, signed: bool, finest: int = -3) -> int:
    """Smallest scale factor (at least `finest`) that fits `max_abs` in 16 bits."""
    limit = 32767 if signed else 65534  # 0xFFFF / 0x8000 stay free for "not implemented"
    scale_factor = finest
    while abs(max_abs) / 10.0**scale_factor > limit:
        scale_factor += 1
    return scale_factor


def _encode_block(
    owner: str,
    points: Sequence[Point],
    known: frozenset[str],
    values: Mapping[str, PointValue | None],
) -> list[int]:
    if not known.issuperset(values):
        raise SunSpecError(f"{owner} has no points {sorted(set(values) - known)}")
    registers: list[int] = []
    for point in points:
        value = values.get(point.name)
        # Fast path for the common case (one-register integer), same checks as encode_point.
        limits = _ONE_REGISTER_INTS.get(point.type)
        if limits is not None and type(value) is int and limits[0] <= value <= limits[1]:
            registers.append(value & 0xFFFF)
        else:
            registers.extend(encode_point(point, value))
    return registers


def encode_model(
    model: ModelDef,
    fixed: Mapping[str, PointValue | None],
    groups: Sequence[Mapping[str, PointValue | None]] = (),
) -> list[int]:
    """All registers of one model, ID and L first; missing points are sentinels."""
    values = dict(fixed)
    values["ID"] = model.model_id
    values["L"] = model.length(len(groups))
    if model.group is not None:
        count = values.setdefault(model.group.count_point, len(groups))
        if count != len(groups):
            raise SunSpecError(f"model {model.model_id}: count {count} but {len(groups)} groups")
    elif groups:
        raise SunSpecError(f"model {model.model_id} has no repeating group")
    registers = _encode_block(f"model {model.model_id}", model.points, model.point_names, values)
    group = model.group
    for group_values in groups:
        assert group is not None
        registers.extend(_encode_block(group.name, group.points, group.point_names, group_values))
    return registers


@dataclass(frozen=True)
class DecodedModel:
    """Raw point values of one model instance (None = not implemented)."""

    model: ModelDef
    fixed: dict[str, PointValue | None]
    groups: list[dict[str, PointValue | None]] = field(default_factory=list)

    def scaled(self, name: str, group_index: int | None = None) -> float | None:
        """A point's value with its scale factor applied (None if unavailable)."""
        if group_index is None:
            point, raw = self.model.point(name), self.fixed[name]
        else:
            assert self.model.group is not None
            point, raw = self.model.group.point(name), self.groups[group_index][name]
        if point.sf is None:
            return apply_scale(raw, 0)
        return apply_scale(raw, self.fixed[point.sf])


def _decode_block(
    points: Sequence[Point], registers: Sequence[int], start: int
) -> dict[str, PointValue | None]:
    values: dict[str, PointValue | None] = {}
    for point in points:
        first = start + point.offset
        values[point.name] = decode_point(point, registers[first : first + point.size])
    return values


def decode_model(model: ModelDef, registers: Sequence[int]) -> DecodedModel:
    """Decode one model from its registers, starting with its ID register."""
    if len(registers) < 2 or registers[0] != model.model_id:
        raise SunSpecError(f"registers do not start with model {model.model_id}")
    length = registers[1]
    if len(registers) < length + 2 or length + 2 < model.fixed_length:
        raise SunSpecError(f"model {model.model_id}: length {length} does not fit")
    fixed = _decode_block(model.points, registers, 0)
    groups: list[dict[str, PointValue | None]] = []
    group: GroupDef | None = model.group
    if group is not None:
        # The length is authoritative: a count point may itself be not implemented.
        count, rest = divmod(length + 2 - model.fixed_length, group.length)
        if rest:
            raise SunSpecError(f"model {model.model_id}: length {length} leaves a partial group")
        for index in range(count):
            start = model.fixed_length + index * group.length
            groups.append(_decode_block(group.points, registers, start))
    return DecodedModel(model=model, fixed=fixed, groups=groups)
