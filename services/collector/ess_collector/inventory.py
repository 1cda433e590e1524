"""The inventory: which sites, endpoints and devices to poll, and how to decode them.

A device is either SunSpec (its models are discovered by walking the model
chain) or uses a named register map: a list of points, each with its space,
address, data type, word and byte order, scale, offset and optional SunSpec-
style scale-factor point. Loading with file and line numbers for errors lives
in `inventory_file.py`; this module is the schema and its rules.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ess_collector.planning import Space, Span
from ess_collector.values import is_integer_field
from ess_common.model import VALUES_BY_TABLE, DeviceId, Table
from ess_loss.service_time import valid_zone
from ess_sunspec import ByteOrder, DataType, WordOrder, register_count

PointType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bit"
]
INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
MAX_EXTRAS_PER_DEVICE = 64
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MapPoint(_Frozen):
    """One point of a register map. value = raw * 10**sf * scale + offset."""

    name: str
    field: str | None = None  # a measurement of the map's table; None: goes to extras
    space: Space
    address: Annotated[int, Field(ge=0, le=65535)]
    type: PointType
    bit: Annotated[int, Field(ge=0, le=15)] | None = None  # bit inside a register
    registers: Annotated[int, Field(ge=1, le=125)] | None = None  # string length
    word_order: WordOrder = WordOrder.BIG
    byte_order: ByteOrder = ByteOrder.BIG
    scale: float = 1.0
    offset: float = 0.0
    sf: str | None = None  # name of an int16 point of the same map: SunSpec scale factor
    sentinels: bool = True  # 0x8000 / 0xFFFF / 0x80000000 / NaN ... mean "not implemented"
    mask: Annotated[int, Field(ge=1)] | None = None  # integer points: keep only these bits
    valid_min: float | None = None  # decoded values outside [valid_min, valid_max] are dropped
    valid_max: float | None = None

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "use letters, digits, '_', '.' or '-' (max 64), starting with a letter"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MapPoint:
        if self.space.holds_bits and self.type != "bit":
            raise ValueError(f"{self.space} points hold single bits: type must be bit")
        if self.type == "bit" and not self.space.holds_bits and self.bit is None:
            raise ValueError("a bit inside a register needs `bit` (0..15)")
        if self.type != "bit" and self.bit is not None:
            raise ValueError("`bit` is only for type bit")
        if (self.type == "string") != (self.registers is not None):
            raise ValueError("`registers` (the length) is required for strings and only for them")
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError("scale must be finite and non-zero, offset finite")
        if self.type in ("bit", "string") and (
            self.scale != 1 or self.offset != 0 or self.sf is not None
        ):
            raise ValueError(f"a {self.type} point cannot have scale, offset or sf")
        if self.mask is not None and (
            self.type not in INTEGER_TYPES or self.scale != 1 or self.offset != 0 or self.sf
        ):
            raise ValueError("`mask` is for integer points without scale, offset or sf")
        return self

    @property
    def data_type(self) -> DataType | None:
        return None if self.type == "bit" else DataType(self.type)

    @property
    def span(self) -> Span:
        data_type = self.data_type
        width = 1 if data_type is None else register_count(data_type, self.registers or 0)
        return Span(self.space, self.address, width)


class RegisterMap(_Frozen):
    """Points of one kind of vendor device; `table` is the kind of reading it produces.

    Rules between points (names, fields, scale factors, overlaps) are checked by
    `map_problems`, so each problem points at the point it is about.
    """

    table: Table
    description: str | None = None
    points: list[MapPoint] = Field(min_length=1)

    @property
    def scale_factor_points(self) -> frozenset[str]:
        return frozenset(p.sf for p in self.points if p.sf is not None)


Problem = tuple[tuple[str | int, ...], str]  # (location in the file's data, reason)


def map_problems(name: str, register_map: RegisterMap) -> list[Problem]:
    """Rules between the points of one map."""
    problems: list[Problem] = []
    by_name: dict[str, MapPoint] = {}
    by_field: dict[str, MapPoint] = {}
    taken: dict[tuple[Space, int], MapPoint] = {}
    extras = 0
    for index, point in enumerate(register_map.points):
        at = ("register_maps", name, "points", index)
        if point.name in by_name:
            problems.append(((*at, "name"), f"point {point.name!r} is defined twice"))
        by_name[point.name] = point
        if point.field is not None and point.field in by_field:
            other = by_field[point.field].name
            problems.append(((*at, "field"), f"{point.field!r} is already filled by {other}"))
        if point.field is not None:
            by_field.setdefault(point.field, point)
        overlap = _overlap(point, taken)
        if overlap:
            problems.append((at, overlap))
    for index, point in enumerate(register_map.points):
        at = ("register_maps", name, "points", index)
        field_problem = _field_problem(point, register_map.table)
        if field_problem:
            problems.append(((*at, "field"), field_problem))
        if point.sf is not None:
            sf_problem = _scale_factor_problem(point, by_name.get(point.sf))
            if sf_problem:
                problems.append(((*at, "sf"), sf_problem))
        if point.field is None and point.name not in register_map.scale_factor_points:
            extras += 1
    if extras > MAX_EXTRAS_PER_DEVICE:
        problems.append(
            (
                ("register_maps", name, "points"),
                f"{extras} points go to extras, at most {MAX_EXTRAS_PER_DEVICE}",
            )
        )
    return problems


def _field_problem(point: MapPoint, table: Table) -> str | None:
    if point.field is None:
        return None
    fields = VALUES_BY_TABLE[table].model_fields
    if point.field not in fields:
        return f"{point.field!r} is not a {table} field ({', '.join(fields)})"
    if point.type == "string":
        return f"a string cannot fill the numeric field {point.field!r}"
    wants_int = is_integer_field(table, point.field)
    plain_integer = (
        point.type in INTEGER_TYPES and point.scale == 1 and point.offset == 0 and not point.sf
    )
    if wants_int and not (point.type == "bit" or plain_integer):
        return (
            f"{point.field!r} is an integer field: use an integer type or bit"
            " without scale, offset or sf"
        )
    if not wants_int and point.type == "bit":
        return f"a bit cannot fill the measurement {point.field!r}"
    return None


def _scale_factor_problem(point: MapPoint, sf_point: MapPoint | None) -> str | None:
    if sf_point is None:
        return f"scale-factor point {point.sf!r} is not in this map"
    if sf_point.type != "int16" or sf_point.space.holds_bits:
        return f"scale-factor point {point.sf!r} must be an int16 register"
    if point.type not in INTEGER_TYPES:
        return "only integer points take a scale-factor point"
    return None


def _overlap(point: MapPoint, taken: dict[tuple[Space, int], MapPoint]) -> str | None:
    span = point.span
    for address in range(span.address, span.end):
        other = taken.get((point.space, address))
        if other is not None and not _may_share(point, other):
            return f"{point.name} overlaps {other.name} at {point.space} address {address}"
    for address in range(span.address, span.end):
        taken[(point.space, address)] = point
    return None


def _may_share(point: MapPoint, other: MapPoint) -> bool:
    """Different bits of one register, or masked views of the same integer."""
    if point.type == other.type == "bit":
        return point.bit != other.bit
    same_value = point.span == other.span and point.type == other.type
    return same_value and point.mask is not None and other.mask is not None


class DeviceConfig(_Frozen):
    """A unit behind an endpoint. SunSpec unless `register_map` names a map."""

    id: str
    unit: Annotated[int, Field(ge=0, le=255)]
    register_map: str | None = None
    sunspec_base: Annotated[int, Field(ge=0, le=65535)] | None = None  # default: 40000, 0, 50000
    gap_fill: Annotated[int, Field(ge=0, le=124)] | None = None  # default: the setting

    @field_validator("id")
    @classmethod
    def _id_is_a_device_key(cls, value: str) -> str:
        DeviceId.parse(value)  # ValueError names the problem
        return value

    @model_validator(mode="after")
    def _one_protocol(self) -> DeviceConfig:
        if self.register_map is not None and self.sunspec_base is not None:
            raise ValueError("a device is either SunSpec (sunspec_base) or register_map, not both")
        return self

    @property
    def device_id(self) -> DeviceId:
        return DeviceId.parse(self.id)


class EndpointConfig(_Frozen):
    """One Modbus TCP server (a device or a gateway); one connection each."""

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    framing: Literal["tcp", "rtu"] = "tcp"  # rtu: RTU frames through a serial gateway
    requests_in_flight: Annotated[int, Field(ge=1, le=32)] = 1  # pipelined (tcp only)
    request_timeout_s: Annotated[float, Field(gt=0, le=10)] | None = None  # default: setting
    request_gap_s: Annotated[float, Field(ge=0, le=5)] = 0.0  # pause between two requests
    devices: list[DeviceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _pipelining_needs_transaction_ids(self) -> EndpointConfig:
        if self.framing == "rtu" and self.requests_in_flight > 1:
            raise ValueError("RTU frames carry no transaction id: requests_in_flight must be 1")
        return self


class SiteConfig(_Frozen):
    id: str
    endpoints: list[EndpointConfig] = Field(min_length=1)
    time_zone: str = "UTC"  # IANA name; the site's daily loss windows follow it

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not valid_zone(value):
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. Asia/Seoul)")
        return value


class Inventory(_Frozen):
    register_maps: dict[str, RegisterMap] = Field(default_factory=dict)
    sites: list[SiteConfig] = Field(min_length=1)

    def devices(self) -> list[DeviceConfig]:
        return [d for s in self.sites for e in s.endpoints for d in e.devices]


def cross_check(inventory: Inventory) -> list[Problem]:
    """Rules that span the file: (location, reason) of each violation."""
    problems: list[Problem] = []
    for name, register_map in inventory.register_maps.items():
        problems.extend(map_problems(name, register_map))
    seen_devices: set[str] = set()
    seen_endpoints: set[tuple[str, int]] = set()
    seen_sites: set[str] = set()
    for s, site in enumerate(inventory.sites):
        if site.id in seen_sites:
            problems.append((("sites", s, "id"), f"site {site.id} is listed twice"))
        seen_sites.add(site.id)
        for e, endpoint in enumerate(site.endpoints):
            where = ("sites", s, "endpoints", e)
            if (endpoint.host, endpoint.port) in seen_endpoints:
                problems.append((where, f"endpoint {endpoint.host}:{endpoint.port} listed twice"))
            seen_endpoints.add((endpoint.host, endpoint.port))
            units: set[int] = set()
            for d, device in enumerate(endpoint.devices):
                at = (*where, "devices", d)
                if device.id in seen_devices:
                    problems.append(((*at, "id"), f"device {device.id} is listed twice"))
                seen_devices.add(device.id)
                if device.device_id.site != site.id:
                    problems.append(((*at, "id"), f"{device.id} is listed under site {site.id}"))
                if device.unit in units:
                    unit_problem = f"unit id {device.unit} is used twice on this endpoint"
                    problems.append(((*at, "unit"), unit_problem))
                units.add(device.unit)
                problems.extend(_map_problems(inventory, device, at))
    return problems


def _map_problems(
    inventory: Inventory, device: DeviceConfig, at: tuple[str | int, ...]
) -> list[Problem]:
    if device.register_map is None:
        return []
    register_map = inventory.register_maps.get(device.register_map)
    where = (*at, "register_map")
    if register_map is None:
        known = ", ".join(sorted(inventory.register_maps)) or "none defined"
        return [(where, f"unknown register map {device.register_map!r} (known: {known})")]
    if register_map.table != device.device_id.table:
        return [
            (
                where,
                f"register map {device.register_map!r} is for {register_map.table} devices,"
                f" {device.id} is a {device.device_id.table}",
            )
        ]
    return []
