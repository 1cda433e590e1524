"""What the detector learned from Kafka, kept in the clusters so a restart does not
re-read a day of Kafka.

Saved every `ESS_GAP_STATE_INTERVAL_S` into each reachable cluster, in one
transaction per cluster: the seen-slot bitsets of every segment (an hour) that
got new slots since that cluster's last save, the offsets that carried each
slice (for lag-aware loss and offset-range replays), the partition of each
device, and the feed's positions. Everything up to those positions is in the
saved bits, so a restart loads the newest state of any cluster and reads Kafka
only from its positions on. Without a state (first start, state older than the
log) it falls back to re-reading the rebuild horizon by time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from ess_common.model import Table

STATE_DDL = (
    """
    CREATE TABLE IF NOT EXISTS gap_detector_segment (
        group_id text NOT NULL,
        table_name text NOT NULL,
        segment_start bigint NOT NULL,
        device_id text NOT NULL,
        bits bytea NOT NULL,
        PRIMARY KEY (group_id, table_name, segment_start, device_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS gap_detector_position (
        group_id text PRIMARY KEY,
        saved_at timestamptz NOT NULL,
        positions jsonb NOT NULL,
        slice_offsets jsonb NOT NULL,
        partitions jsonb NOT NULL
    )
    """,
)

_UPSERT_SEGMENT = """
INSERT INTO gap_detector_segment (group_id, table_name, segment_start, device_id, bits)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (group_id, table_name, segment_start, device_id) DO UPDATE SET bits = EXCLUDED.bits
"""

_UPSERT_POSITION = """
INSERT INTO gap_detector_position (group_id, saved_at, positions, slice_offsets, partitions)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb)
ON CONFLICT (group_id) DO UPDATE SET saved_at = EXCLUDED.saved_at,
    positions = EXCLUDED.positions, slice_offsets = EXCLUDED.slice_offsets,
    partitions = EXCLUDED.partitions
"""


@dataclass
class DetectorState:
    saved_at: datetime
    positions: dict[str, int]  # "topic:partition" -> next offset to read
    slice_offsets: list[tuple[str, int, int, int, int]]  # table, partition, slice, lo, hi
    partitions: list[tuple[str, str, int]]  # table, device, partition
    segments: Sequence[tuple[str, int, str, bytes]] = field(default_factory=list)


async def ensure_state_tables(conn: asyncpg.Connection) -> None:
    for ddl in STATE_DDL:
        await conn.execute(ddl)


async def save_state(
    conn: asyncpg.Connection, group: str, state: DetectorState, forget_before_s: int
) -> None:
    async with conn.transaction():
        await ensure_state_tables(conn)
        await conn.executemany(
            _UPSERT_SEGMENT, [(group, t, s, d, bits) for t, s, d, bits in state.segments]
        )
        await conn.execute(
            "DELETE FROM gap_detector_segment WHERE group_id = $1 AND segment_start < $2",
            group,
            forget_before_s,
        )
        await conn.execute(
            _UPSERT_POSITION,
            group,
            state.saved_at,
            orjson.dumps(state.positions).decode(),
            orjson.dumps(state.slice_offsets).decode(),
            orjson.dumps(state.partitions).decode(),
        )


async def saved_at(conn: asyncpg.Connection, group: str) -> datetime | None:
    await ensure_state_tables(conn)
    found: datetime | None = await conn.fetchval(
        "SELECT saved_at FROM gap_detector_position WHERE group_id = $1", group
    )
    return found


async def load_state(
    conn: asyncpg.Connection, group: str, since_s: int, tables: tuple[Table, ...]
) -> DetectorState | None:
    await ensure_state_tables(conn)
    row = await conn.fetchrow(
        "SELECT saved_at, positions, slice_offsets, partitions FROM gap_detector_position"
        " WHERE group_id = $1",
        group,
    )
    if row is None:
        return None
    segments = await conn.fetch(
        "SELECT table_name, segment_start, device_id, bits FROM gap_detector_segment"
        " WHERE group_id = $1 AND segment_start >= $2 AND table_name = ANY($3::text[])",
        group,
        since_s,
        list(tables),
    )

    def rows(raw: Any) -> Any:
        return orjson.loads(raw)

    return DetectorState(
        saved_at=row["saved_at"],
        positions={k: int(v) for k, v in rows(row["positions"]).items()},
        slice_offsets=[tuple(x) for x in rows(row["slice_offsets"])],
        partitions=[tuple(x) for x in rows(row["partitions"])],
        segments=[(r[0], int(r[1]), r[2], bytes(r[3])) for r in segments],
    )
