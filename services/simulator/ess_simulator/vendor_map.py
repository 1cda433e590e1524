"""The vendor register map (vendor_map.yaml): schema, loading, validation.

One list of points per device kind. Each point says where it lives (register
space and 0-based address), how it is encoded (type, word order, byte order)
and how raw numbers become physical ones: value = raw * scale + offset.
The same file can drive a collector: nothing in it is simulator-specific
except `field`, the reading the simulator fills the point from.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ess_simulator.config import ConfigError
from ess_simulator.readings import (
    BankReading,
    MeterReading,
    PcsReading,
    RackReading,
    Reading,
    field_names,
)
from ess_simulator.topology import DeviceKind
from ess_sunspec import ByteOrder, DataType, WordOrder, register_count


class Space(StrEnum):
    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"


BIT_SPACES = frozenset({Space.COIL, Space.DISCRETE})
READING_TYPES: dict[DeviceKind, type[Reading]] = {
    DeviceKind.BANK: BankReading,
    DeviceKind.RACK: RackReading,
    DeviceKind.PCS: PcsReading,
    DeviceKind.ETC: MeterReading,
}
# Fields computed from a reading for status bits, plus the device identity.
DERIVED_FIELDS: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.BANK: frozenset(
        {"charging", "discharging", "warning_active", "alarm_active", "all_contactors_closed"}
    ),
    DeviceKind.RACK: frozenset({"charging", "discharging", "warning_active", "alarm_active"}),
    DeviceKind.PCS: frozenset({"alarm_active"}),
    DeviceKind.ETC: frozenset({"event_active"}),
}
IDENTITY_FIELDS = frozenset({"serial_number", "unit_id"})


class VendorPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    field: str
    space: Space
    address: int = Field(ge=0, le=65535)
    type: Literal[
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
        "string",
        "bit",
    ]
    bit: int | None = Field(default=None, ge=0, le=15)  # for "bit" points in registers
    registers: int | None = Field(default=None, ge=1, le=64)  # for strings
    word_order: WordOrder = WordOrder.BIG
    byte_order: ByteOrder = ByteOrder.BIG
    scale: float = 1.0
    offset: float = 0.0
    units: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> VendorPoint:
        if self.space in BIT_SPACES and self.type != "bit":
            raise ValueError(f"{self.name}: {self.space} points must have type bit")
        if self.type == "bit" and self.space not in BIT_SPACES and self.bit is None:
            raise ValueError(f"{self.name}: a bit inside a register needs `bit`")
        if self.type == "string" and self.registers is None:
            raise ValueError(f"{self.name}: a string needs `registers`")
        if self.scale == 0:
            raise ValueError(f"{self.name}: scale cannot be 0")
        return self

    @property
    def data_type(self) -> DataType | None:
        return None if self.type == "bit" else DataType(self.type)

    @property
    def width(self) -> int:
        """Addresses the point occupies in its space."""
        if self.data_type is None:
            return 1
        return register_count(self.data_type, self.registers or 0)


class VendorMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str | None = None
    devices: dict[DeviceKind, list[VendorPoint]]

    @model_validator(mode="after")
    def _no_overlaps_known_fields(self) -> VendorMap:
        for kind, points in self.devices.items():
            allowed = field_names(READING_TYPES[kind]) | DERIVED_FIELDS[kind] | IDENTITY_FIELDS
            taken: dict[tuple[Space, int], VendorPoint] = {}
            for point in points:
                if point.field not in allowed:
                    raise ValueError(f"{kind}.{point.name}: unknown field {point.field!r}")
                for address in range(point.address, point.address + point.width):
                    other = taken.get((point.space, address))
                    shared_bits = other is not None and other.type == point.type == "bit"
                    if other is not None and not (shared_bits and other.bit != point.bit):
                        raise ValueError(f"{kind}.{point.name} overlaps {other.name}")
                    taken[(point.space, address)] = point
        return self

    def points(self, kind: DeviceKind) -> list[VendorPoint]:
        return self.devices.get(kind, [])


def load_vendor_map(path: Path) -> VendorMap:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return VendorMap.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read vendor map {path}: {exc}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"vendor map {path}: {where}: {error['msg']}") from exc
