"""Fleet registry records on Kafka: what the collector polls, for each cluster's sink
to upsert into its `fleet_device` / `fleet_site` tables.

Why Kafka and not a database write from the collector: the collector runs on
premises and must not hold credentials of the cloud database; both clusters
already get everything through Kafka (the cloud one through MirrorMaker 2), so
the registry travels the same way and each sink writes only its own cluster.
The topic is compacted and keyed (`device:<id>`, `site:<name>`): a new sink
group reads the latest record of every key, nothing older. Values are
versioned JSON (orjson), refused on an unknown version or field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ess_common.model import DeviceId, Table


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeviceRecord(_Record):
    kind: Literal["device"] = "device"
    v: Literal[1] = 1
    device: str
    site: str
    table: Table
    commissioned_at: datetime  # its first poll
    registered_by: Annotated[str, Field(min_length=1, max_length=64)] = "collector"

    @field_validator("device")
    @classmethod
    def _device_id(cls, value: str) -> str:
        DeviceId.parse(value)
        return value

    @field_validator("commissioned_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone")
        return value.astimezone(UTC).replace(microsecond=0)

    @property
    def key(self) -> bytes:
        return f"device:{self.device}".encode()


class SiteRecord(_Record):
    kind: Literal["site"] = "site"
    v: Literal[1] = 1
    site: str
    time_zone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"

    @property
    def key(self) -> bytes:
        return f"site:{self.site}".encode()


RegistryRecord = DeviceRecord | SiteRecord


class RecordError(ValueError):
    """A registry record that cannot be decoded."""


def encode_record(record: RegistryRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def decode_record(value: bytes | None) -> RegistryRecord:
    try:
        doc = orjson.loads(value or b"")
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind == "device":
            return DeviceRecord.model_validate(doc)
        if kind == "site":
            return SiteRecord.model_validate(doc)
    except (orjson.JSONDecodeError, ValidationError, ValueError) as exc:
        raise RecordError(f"undecodable registry record: {exc}") from None
    raise RecordError(f"unknown registry record kind {kind!r}")
