"""Which slots a cluster holds: per device, a bitset of the seconds of a range.

Two steps keep the database work close to one `count(*) ... GROUP BY device,
bucket` over the range (the benchmark's baseline):

1. count rows per device and bucket (an hour by default);
2. only for buckets that are neither empty nor complete, fetch the seconds
   present (`array_agg`), bucket by bucket for the devices concerned.

Complete buckets become all-ones and empty ones stay zero without moving a
row. Table names come from `ess_common.model.TABLES` only; every value is a
query parameter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import asyncpg

from ess_common.db import quote_ident
from ess_common.model import TABLES, Reading, Table
from ess_tables.rows import from_row

DEFAULT_BUCKET_S = 3600


def _checked(table: Table) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    return quote_ident(table)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


async def bucket_counts(
    conn: asyncpg.Connection,
    table: Table,
    start: datetime,
    end: datetime,
    *,
    bucket_s: int = DEFAULT_BUCKET_S,
    site: str | None = None,
    devices: Collection[str] | None = None,
) -> dict[tuple[str, int], int]:
    """Rows per (device, bucket index) in `[start, end)`; buckets start at `start`."""
    params: list[object] = [start, end, timedelta(seconds=bucket_s)]
    where = ["ts >= $1", "ts < $2"]
    if site is not None:
        params.append(site)
        where.append(f"site = ${len(params)}")
    if devices is not None:
        params.append(list(devices))
        where.append(f"device_id = ANY(${len(params)}::text[])")
    sql = (
        "SELECT device_id, date_bin($3::interval, ts, $1::timestamptz) AS bucket, count(*)"  # noqa: S608 - fixed fragments only
        f" FROM {_checked(table)} WHERE {' AND '.join(where)} GROUP BY 1, 2"
    )
    rows = await conn.fetch(sql, *params)
    origin = _epoch(start)
    return {
        (r["device_id"], (_epoch(r["bucket"]) - origin) // bucket_s): int(r["count"]) for r in rows
    }


async def _present_seconds(
    conn: asyncpg.Connection,
    table: Table,
    start: datetime,
    end: datetime,
    devices: list[str],
) -> dict[str, list[int]]:
    """Seconds present since `start` per device, for `[start, end)`."""
    sql = (
        "SELECT device_id, array_agg((extract(epoch FROM ts) - $3::bigint)::int) AS secs"  # noqa: S608
        f" FROM {_checked(table)} WHERE device_id = ANY($1) AND ts >= $2 AND ts < $4"
        " GROUP BY 1"
    )
    origin = start.astimezone(UTC)
    rows = await conn.fetch(sql, devices, origin, _epoch(origin), end)
    return {r["device_id"]: list(r["secs"]) for r in rows}


def bits_from_seconds(seconds: list[int], length: int) -> int:
    raw = bytearray((length + 7) // 8)
    for s in seconds:
        if 0 <= s < length:
            raw[s >> 3] |= 1 << (s & 7)
    return int.from_bytes(raw, "little")


async def presence(
    conn: asyncpg.Connection,
    table: Table,
    start: datetime,
    end: datetime,
    *,
    bucket_s: int = DEFAULT_BUCKET_S,
    site: str | None = None,
    devices: Collection[str] | None = None,
) -> dict[str, int]:
    """Per device, the bits of `[start, end)` this cluster holds (bit i = start + i s)."""
    length = _epoch(end) - _epoch(start)
    if length <= 0:
        raise ValueError("end must be after start")
    counts = await bucket_counts(
        conn, table, start, end, bucket_s=bucket_s, site=site, devices=devices
    )
    bits: dict[str, int] = defaultdict(int)
    partial: dict[int, list[str]] = defaultdict(list)
    for (device, bucket), n in counts.items():
        b_start = bucket * bucket_s
        b_len = min(bucket_s, length - b_start)
        if n >= b_len:
            bits[device] |= ((1 << b_len) - 1) << b_start
        else:
            partial[bucket].append(device)
    for bucket, devs in sorted(partial.items()):
        b_start = bucket * bucket_s
        b_len = min(bucket_s, length - b_start)
        lo = start + timedelta(seconds=b_start)
        found = await _present_seconds(conn, table, lo, lo + timedelta(seconds=b_len), devs)
        for device, secs in found.items():
            bits[device] |= bits_from_seconds(secs, b_len) << b_start
    return dict(bits)


async def table_bytes(conn: asyncpg.Connection, table: Table) -> int:
    """On-disk size of a table with its indexes (all chunks on a hypertable)."""
    _checked(table)
    try:
        size = await conn.fetchval("SELECT hypertable_size($1::regclass)", table)
    except (asyncpg.UndefinedFunctionError, asyncpg.InvalidParameterValueError):
        size = None
    if size is None:
        size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
    return int(size or 0)


async def site_has_rows(conn: asyncpg.Connection, table: Table, site: str) -> bool:
    """Whether `site` has any row in `table` (uses the (site, ts) index)."""
    sql = f"SELECT EXISTS (SELECT 1 FROM {_checked(table)} WHERE site = $1)"  # noqa: S608
    return bool(await conn.fetchval(sql, site))


async def latest_rows(conn: asyncpg.Connection, table: Table, since: datetime) -> list[Reading]:
    """Each device's newest stored reading at or after `since`."""
    if table not in TABLES:  # the identifier below comes only from the fixed table set
        raise ValueError(f"unknown table {table!r}")
    sql = (
        f"SELECT DISTINCT ON (device_id) * FROM {quote_ident(table)}"  # noqa: S608
        " WHERE ts >= $1 ORDER BY device_id, ts DESC"
    )
    return [from_row(table, record) for record in await conn.fetch(sql, since)]


async def sites_in_range(
    conn: asyncpg.Connection, table: Table, start: datetime, end: datetime
) -> list[str]:
    """Sites with a row in `table` in `[start, end)`."""
    sql = f"SELECT DISTINCT site FROM {_checked(table)} WHERE ts >= $1 AND ts < $2"  # noqa: S608
    return sorted(r["site"] for r in await conn.fetch(sql, start, end))
