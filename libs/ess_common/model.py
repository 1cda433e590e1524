"""The standard data model: one reading = one device at one one-second slot.

Measurement fields are drawn from the SunSpec information models: 802 (battery
base) and 803 (lithium-ion bank) for `bank`, 804 (lithium-ion string) for
`rack`, 701/713/714 (DER AC, storage capacity, DC) for `pcs`, and the meter
models (201-204) plus environment sensors for `etc`. Points a vendor adds go
to `extras`. A value the device marked "not implemented" is None, never a
number, and the reading's quality carries NOT_IMPLEMENTED.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Table = Literal["bank", "rack", "pcs", "etc"]
TABLES: tuple[Table, ...] = ("bank", "rack", "pcs", "etc")

_SITE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Quality(enum.IntFlag):
    """Why a reading is less than perfect; 0 means every point was read and valid."""

    GOOD = 0
    NOT_IMPLEMENTED = 1  # a SunSpec sentinel (0xFFFF, 0x8000, NaN) became null
    PARTIAL = 2  # some requests for this device failed; their points are null
    SCALE_FACTOR_INVALID = 4  # a scale-factor register was itself a sentinel
    OUT_OF_RANGE = 8  # a decoded value was outside its physical range and dropped
    LATE = 16  # read after its slot's second had passed (overrun)


class DeviceId(BaseModel):
    """Identity of a device; `key` is its Kafka message key and `device_id` column."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Table
    site: str
    bank: Annotated[int, Field(ge=1, le=32767)] | None = None
    rack: Annotated[int, Field(ge=1, le=32767)] | None = None
    unit: Annotated[int, Field(ge=1, le=32767)] | None = None

    @field_validator("site")
    @classmethod
    def _site_is_a_slug(cls, value: str) -> str:
        if not _SITE_RE.match(value):
            raise ValueError("site must be lowercase letters, digits, '_' or '-' (max 63)")
        return value

    @model_validator(mode="after")
    def _identity_matches_table(self) -> DeviceId:
        needs = {
            "bank": ("bank",),
            "rack": ("bank", "rack"),
            "pcs": ("unit",),
            "etc": ("unit",),
        }[self.table]
        for name in ("bank", "rack", "unit"):
            present = getattr(self, name) is not None
            if present != (name in needs):
                state = "requires" if name in needs else "must not have"
                raise ValueError(f"a {self.table} device {state} '{name}'")
        return self

    @property
    def key(self) -> str:
        if self.table == "bank":
            return f"{self.site}/bank{self.bank}"
        if self.table == "rack":
            return f"{self.site}/bank{self.bank}/rack{self.rack}"
        return f"{self.site}/{self.table}{self.unit}"

    @classmethod
    def parse(cls, key: str) -> DeviceId:
        """Inverse of `key`: 'site1/bank1/rack3' -> DeviceId(table='rack', ...)."""
        parts = key.split("/")
        match = [_KEY_PART_RE.match(p) for p in parts[1:]]
        if len(parts) < 2 or not all(match):
            raise ValueError(f"not a device key: {key!r}")
        named = {m.group(1): int(m.group(2)) for m in match if m}
        kinds = tuple(m.group(1) for m in match if m)
        table: Table
        if kinds == ("bank",):
            table = "bank"
        elif kinds == ("bank", "rack"):
            table = "rack"
        elif kinds in (("pcs",), ("etc",)):
            table = "pcs" if kinds == ("pcs",) else "etc"
            return cls(table=table, site=parts[0], unit=named[kinds[0]])
        else:
            raise ValueError(f"not a device key: {key!r}")
        return cls(table=table, site=parts[0], bank=named["bank"], rack=named.get("rack"))


_KEY_PART_RE = re.compile(r"^(bank|rack|pcs|etc)([1-9][0-9]{0,4})$")

OptFloat = float | None
OptInt = int | None
ExtraValue = float | int | str | bool | None


class Measurements(BaseModel):
    """Base for the per-table measurement sets; every field is optional (null = not read)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    table: ClassVar[Table]


class BankValues(Measurements):
    """SunSpec 802 battery + 803 lithium-ion bank."""

    table: ClassVar[Table] = "bank"
    soc_pct: OptFloat = None
    soh_pct: OptFloat = None
    voltage_v: OptFloat = None
    current_a: OptFloat = None
    power_w: OptFloat = None
    charge_current_limit_a: OptFloat = None
    discharge_current_limit_a: OptFloat = None
    cell_v_max: OptFloat = None
    cell_v_min: OptFloat = None
    cell_v_avg: OptFloat = None
    module_t_max_c: OptFloat = None
    module_t_min_c: OptFloat = None
    module_t_avg_c: OptFloat = None
    strings_connected: OptInt = None
    state: OptInt = None
    alarm_bits: OptInt = None
    warning_bits: OptInt = None


class RackValues(Measurements):
    """SunSpec 804 lithium-ion string (one rack)."""

    table: ClassVar[Table] = "rack"
    soc_pct: OptFloat = None
    soh_pct: OptFloat = None
    voltage_v: OptFloat = None
    current_a: OptFloat = None
    cell_v_max: OptFloat = None
    cell_v_min: OptFloat = None
    cell_v_avg: OptFloat = None
    cell_v_max_module: OptInt = None
    cell_v_min_module: OptInt = None
    module_t_max_c: OptFloat = None
    module_t_min_c: OptFloat = None
    module_t_avg_c: OptFloat = None
    modules: OptInt = None
    state: OptInt = None
    alarm_bits: OptInt = None
    warning_bits: OptInt = None


class PcsValues(Measurements):
    """SunSpec 701 DER AC measurement, 713 DER storage capacity, 714 DER DC measurement."""

    table: ClassVar[Table] = "pcs"
    active_power_w: OptFloat = None
    reactive_power_var: OptFloat = None
    apparent_power_va: OptFloat = None
    power_factor: OptFloat = None
    frequency_hz: OptFloat = None
    voltage_ll_v: OptFloat = None
    current_a: OptFloat = None
    dc_voltage_v: OptFloat = None
    dc_current_a: OptFloat = None
    dc_power_w: OptFloat = None
    energy_charged_wh: OptFloat = None
    energy_discharged_wh: OptFloat = None
    soc_pct: OptFloat = None
    energy_available_wh: OptFloat = None
    cabinet_t_c: OptFloat = None
    state: OptInt = None
    alarm_bits: OptInt = None


class EtcValues(Measurements):
    """Auxiliary devices: a revenue meter (SunSpec 201-204) and site environment."""

    table: ClassVar[Table] = "etc"
    active_power_w: OptFloat = None
    reactive_power_var: OptFloat = None
    frequency_hz: OptFloat = None
    voltage_v: OptFloat = None
    current_a: OptFloat = None
    energy_import_wh: OptFloat = None
    energy_export_wh: OptFloat = None
    ambient_t_c: OptFloat = None
    humidity_pct: OptFloat = None
    state: OptInt = None
    alarm_bits: OptInt = None


VALUES_BY_TABLE: dict[Table, type[Measurements]] = {
    "bank": BankValues,
    "rack": RackValues,
    "pcs": PcsValues,
    "etc": EtcValues,
}


def measurement_fields(table: Table) -> tuple[str, ...]:
    """Column names of a table's measurements, in declaration order (stable)."""
    return tuple(VALUES_BY_TABLE[table].model_fields)


class Reading(BaseModel):
    """One device at one slot. `ts` is the wall-clock second the poll belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: DeviceId
    ts: datetime
    read_at: datetime
    quality: Quality = Quality.GOOD
    values: Measurements
    extras: dict[str, ExtraValue] = Field(default_factory=dict)

    @field_validator("ts", "read_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps must carry a time zone (UTC)")
        return value.astimezone(UTC)

    @field_validator("ts")
    @classmethod
    def _whole_second(cls, value: datetime) -> datetime:
        if value.microsecond:
            raise ValueError("ts is a one-second slot and must have no fraction")
        return value

    @model_validator(mode="after")
    def _values_match_table(self) -> Reading:
        if self.values.table != self.device.table:
            raise ValueError(
                f"values are for table {self.values.table!r}, device is {self.device.table!r}"
            )
        return self

    @property
    def table(self) -> Table:
        return self.device.table
