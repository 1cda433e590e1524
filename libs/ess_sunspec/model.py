"""Shapes of SunSpec information models: points, repeating groups, models.

A model's point offsets count from its first register (ID = 0, L = 1), as in
the published SunSpec model definitions; the length L a device reports counts
the registers after those two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PointType(StrEnum):
    """SunSpec point types (the ones the ESS models and their peers use)."""

    INT16 = "int16"
    UINT16 = "uint16"
    ACC16 = "acc16"
    ENUM16 = "enum16"
    BITFIELD16 = "bitfield16"
    PAD = "pad"
    SUNSSF = "sunssf"
    INT32 = "int32"
    UINT32 = "uint32"
    ACC32 = "acc32"
    ENUM32 = "enum32"
    BITFIELD32 = "bitfield32"
    IPADDR = "ipaddr"
    INT64 = "int64"
    UINT64 = "uint64"
    ACC64 = "acc64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


# Registers per type; strings take the size their point declares.
FIXED_SIZES: dict[PointType, int] = {
    PointType.INT16: 1,
    PointType.UINT16: 1,
    PointType.ACC16: 1,
    PointType.ENUM16: 1,
    PointType.BITFIELD16: 1,
    PointType.PAD: 1,
    PointType.SUNSSF: 1,
    PointType.INT32: 2,
    PointType.UINT32: 2,
    PointType.ACC32: 2,
    PointType.ENUM32: 2,
    PointType.BITFIELD32: 2,
    PointType.IPADDR: 2,
    PointType.INT64: 4,
    PointType.UINT64: 4,
    PointType.ACC64: 4,
    PointType.FLOAT32: 2,
    PointType.FLOAT64: 4,
}

Symbols = tuple[tuple[str, int], ...]


class SunSpecError(ValueError):
    """A model definition or a register image does not follow SunSpec."""


@dataclass(frozen=True, slots=True)
class Point:
    """One point: where it sits, how it is encoded and what scales it."""

    name: str
    offset: int
    type: PointType
    size: int = 0  # 0: the type's own size (strings must give theirs)
    units: str | None = None
    sf: str | None = None  # name of the sunssf point in the fixed block that scales this one
    mandatory: bool = False
    writable: bool = False
    symbols: Symbols = ()  # enum values or bit numbers, by name

    def __post_init__(self) -> None:
        if self.size == 0:
            if self.type not in FIXED_SIZES:
                raise SunSpecError(f"{self.name}: a {self.type} point needs its size")
            object.__setattr__(self, "size", FIXED_SIZES[self.type])

    def symbol_value(self, name: str) -> int:
        """Enum value or bit number of a symbol."""
        for symbol, value in self.symbols:
            if symbol == name:
                return value
        raise KeyError(f"{self.name} has no symbol {name}")


def _check_points(owner: str, points: tuple[Point, ...], first_offset: int) -> int:
    """Validate contiguous offsets and sizes; return the offset after the last point."""
    offset = first_offset
    names: set[str] = set()
    for point in points:
        if point.offset != offset:
            raise SunSpecError(f"{owner}.{point.name} at {point.offset}, expected {offset}")
        expected = FIXED_SIZES.get(point.type)
        if expected is not None and point.size != expected:
            raise SunSpecError(f"{owner}.{point.name}: {point.type} has size {expected}")
        if point.name in names:
            raise SunSpecError(f"{owner}.{point.name} defined twice")
        names.add(point.name)
        offset += point.size
    return offset


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A repeating group; its count comes from a point of the fixed block."""

    name: str
    count_point: str
    points: tuple[Point, ...]
    point_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_points(self.name, self.points, 0)
        object.__setattr__(self, "point_names", frozenset(p.name for p in self.points))

    @property
    def length(self) -> int:
        last = self.points[-1]
        return last.offset + last.size

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(f"group {self.name} has no point {name}")


@dataclass(frozen=True, slots=True)
class ModelDef:
    """A SunSpec model: fixed block (starting with ID and L) and optional group."""

    model_id: int
    name: str
    label: str
    points: tuple[Point, ...]
    group: GroupDef | None = None
    point_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = f"model {self.model_id}"
        object.__setattr__(self, "point_names", frozenset(p.name for p in self.points))
        if [p.name for p in self.points[:2]] != ["ID", "L"]:
            raise SunSpecError(f"{owner} must start with ID and L")
        _check_points(owner, self.points, 0)
        names = {p.name for p in self.points}
        group_points = self.group.points if self.group else ()
        for point in (*self.points, *group_points):
            if point.sf is not None and point.sf not in names:
                raise SunSpecError(f"{owner}.{point.name} scaled by unknown {point.sf}")
        if self.group is not None and self.group.count_point not in names:
            raise SunSpecError(f"{owner} group counted by unknown {self.group.count_point}")

    @property
    def fixed_length(self) -> int:
        """Registers of the fixed block, ID and L included."""
        last = self.points[-1]
        return last.offset + last.size

    def length(self, group_count: int = 0) -> int:
        """The L a device reports with `group_count` repetitions of the group."""
        group_length = self.group.length if self.group else 0
        return self.fixed_length - 2 + group_count * group_length

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(f"model {self.model_id} has no point {name}")
