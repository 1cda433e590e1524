"""Readings to table rows and back: the one mapping between the data model and the columns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from ess_common.model import VALUES_BY_TABLE, DeviceId, Quality, Reading, Table, measurement_fields

IDENTITY_COLUMNS: dict[Table, tuple[str, ...]] = {
    "bank": ("bank_id",),
    "rack": ("bank_id", "rack_id"),
    "pcs": ("unit_id",),
    "etc": ("unit_id",),
}
NATURAL_KEY = ("device_id", "ts")


def columns(table: Table) -> tuple[str, ...]:
    return (
        "device_id",
        "site",
        *IDENTITY_COLUMNS[table],
        "ts",
        "read_at",
        "quality",
        *measurement_fields(table),
        "extras",
    )


def _identity(reading: Reading) -> tuple[int | None, ...]:
    d = reading.device
    if d.table == "bank":
        return (d.bank,)
    if d.table == "rack":
        return (d.bank, d.rack)
    return (d.unit,)


def to_row(reading: Reading) -> tuple[Any, ...]:
    values = reading.values
    return (
        reading.device.key,
        reading.device.site,
        *_identity(reading),
        reading.ts,
        reading.read_at,
        int(reading.quality),
        *(getattr(values, name) for name in measurement_fields(reading.table)),
        orjson.dumps(reading.extras).decode() if reading.extras else None,
    )


def to_rows(readings: Iterable[Reading]) -> list[tuple[Any, ...]]:
    return [to_row(r) for r in readings]


class RowByName(Protocol):
    """A stored row read by column name (an asyncpg Record, a dict)."""

    def __getitem__(self, column: str) -> Any: ...


def from_row(table: Table, row: RowByName) -> Reading:
    """The reading a stored row holds."""
    extras = row["extras"]
    return Reading(
        device=DeviceId.parse(row["device_id"]),
        ts=row["ts"],
        read_at=row["read_at"],
        quality=Quality(row["quality"]),
        values=VALUES_BY_TABLE[table](**{f: row[f] for f in measurement_fields(table)}),
        extras=orjson.loads(extras) if extras else {},
    )
