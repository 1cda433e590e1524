"""What the rebuild reads from TimescaleDB: minute aggregates, latest rows, high water.

The SQL computes exactly what the Lua script computes per device and minute:
`sum_q` with the same quantization (`round(value * 10^decimals)`, ties to even
on Linux), first/last at the earliest/latest slot that has a value, and a
60-bit mask of the slots present (for the dedupe bitmaps). Works on plain
PostgreSQL too (no Timescale-only functions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from ess_cache.rollup import MinuteRow
from ess_cache_layout.aggregate import Agg, Bucket
from ess_cache_layout.measures import MEASURES
from ess_common.codec import encode_reading
from ess_common.db import quote_ident
from ess_common.model import TABLES, DeviceId, Table
from ess_tables.presence import latest_rows


def _measure_columns(table: Table) -> list[str]:
    out: list[str] = []
    for m in MEASURES[table]:
        c = quote_ident(m.column)
        scale = f"{10**m.decimals}::float8"
        has = f"FILTER (WHERE {c} IS NOT NULL)"
        out += [
            f"count({c})",
            f"sum(round({c} * {scale})::bigint)",
            f"min({c})",
            f"max({c})",
            f"(array_agg({c} ORDER BY ts) {has})[1]",
            f"extract(epoch FROM min(ts) {has})::bigint",
            f"(array_agg({c} ORDER BY ts DESC) {has})[1]",
            f"extract(epoch FROM max(ts) {has})::bigint",
        ]
    return out


def _minute_sql(table: Table) -> str:
    if table not in TABLES:  # identifiers below come only from the fixed table set
        raise ValueError(f"unknown table {table!r}")
    return (
        "SELECT device_id, (extract(epoch FROM ts)::bigint / 60) * 60 AS minute,"  # noqa: S608
        " bit_or(1::bigint << extract(second FROM ts)::int) AS seconds, "
        + ", ".join(_measure_columns(table))
        + f" FROM {quote_ident(table)} WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2"
    )


_MINUTE_SQL = {t: _minute_sql(t) for t in TABLES}


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class DeviceCache:
    def __init__(self) -> None:
        self._known: dict[str, DeviceId] = {}

    def get(self, key: str) -> DeviceId:
        device = self._known.get(key)
        if device is None:
            device = self._known[key] = DeviceId.parse(key)
        return device


async def minute_rows(
    conn: asyncpg.Connection, table: Table, start: int, end: int, devices: DeviceCache
) -> list[MinuteRow]:
    """One row per device and minute with data in `[start, end)`."""
    records = await conn.fetch(_MINUTE_SQL[table], _at(start), _at(end))
    return [_minute_row(r, table, devices) for r in records]


def _minute_row(record: asyncpg.Record, table: Table, devices: DeviceCache) -> MinuteRow:
    bucket: Bucket = {}
    for j, m in enumerate(MEASURES[table]):
        n, sum_q, lo, hi, first, first_slot, last, last_slot = record[3 + 8 * j : 11 + 8 * j]
        if n:
            bucket[m.name] = Agg(
                int(n), int(sum_q), lo, hi, first, int(first_slot), last, int(last_slot)
            )
    return MinuteRow(devices.get(record[0]), int(record[1]), int(record[2]), bucket)


async def latest_readings(
    conn: asyncpg.Connection, table: Table, since: int
) -> AsyncIterator[tuple[DeviceId, int, bytes]]:
    """(device, slot, wire payload) of each device's newest row since `since`."""
    for reading in await latest_rows(conn, table, _at(since)):
        yield reading.device, int(reading.ts.timestamp()), encode_reading(reading)
