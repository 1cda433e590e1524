"""Data helpers for sink tests: topics per test, fast producing, table fingerprints."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from ess_common.clusters import Cluster
from ess_common.codec import encode_reading
from ess_common.kafka import ReadingProducer
from ess_common.model import TABLES, DeviceId, RackValues, Reading
from ess_common.topics import telemetry_topic
from ess_tables.rows import columns


def recent_slot(hours_ago: float = 1.0) -> datetime:
    """A whole-second slot inside the sink's default bounds (30 days back, 5 minutes ahead)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)


def rack_payload(device: DeviceId, ts: datetime, **over: object) -> bytes:
    """The wire JSON of a rack reading of `device` at `ts`, top-level fields `over`ridden."""
    reading = Reading(device=device, ts=ts, read_at=ts, values=RackValues(soc_pct=50.0, modules=16))
    doc = orjson.loads(encode_reading(reading))
    doc.update(over)
    return orjson.dumps(doc)


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes


def messages(readings: Iterable[Reading], prefix: str) -> list[Message]:
    return [
        Message(telemetry_topic(r.table, prefix), r.device.key.encode(), encode_reading(r))
        for r in readings
    ]


async def produce(producer: ReadingProducer, batch: Iterable[Message]) -> int:
    """Send and wait for every ack; returns how many were sent."""
    acks = [await producer.send_raw(m.topic, m.value, m.key) for m in batch]
    await asyncio.gather(*acks)
    return len(acks)


async def produce_paced(
    producer: ReadingProducer, batch: Sequence[Message], slots: int, over_s: float
) -> int:
    """Send `batch` one slot's share at a time, spread over `over_s`; returns how many."""
    per_slot = len(batch) // slots
    sent = 0
    for i in range(0, len(batch), per_slot):
        sent += await produce(producer, batch[i : i + per_slot])
        await asyncio.sleep(over_s / slots)
    return sent


@dataclass(frozen=True)
class TableFingerprint:
    rows: int
    distinct_keys: int
    digest: str | None  # md5 of every column but written_at, in key order
    last_written_at: datetime | None


async def fingerprints(dsn: str) -> dict[str, TableFingerprint]:
    """Per table: count, distinct (device_id, ts), a digest of the contents, max(written_at)."""
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, TableFingerprint] = {}
        for table in TABLES:
            cols = ", ".join(columns(table))
            row: Any = await conn.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT (device_id, ts)) AS k,"
                " md5(string_agg(t::text, '|' ORDER BY device_id, ts)) AS digest,"
                f" (SELECT max(written_at) FROM {table}) AS w"
                f" FROM (SELECT {cols} FROM {table}) t"
            )
            out[table] = TableFingerprint(row["n"], row["k"], row["digest"], row["w"])
        return out
    finally:
        await conn.close()


async def assert_both_hold_each_reading_once(dsns: Mapping[Cluster, str], produced: int) -> None:
    """Both clusters: every table count = distinct keys, `produced` rows, same contents."""
    local, cloud = [await fingerprints(dsns[c]) for c in ("local", "cloud")]
    for table, fp in local.items():
        assert fp.rows == fp.distinct_keys, table
    assert sum(fp.rows for fp in local.values()) == produced
    assert {t: (f.rows, f.digest) for t, f in local.items()} == {
        t: (f.rows, f.digest) for t, f in cloud.items()
    }


async def row_count(dsn: str) -> int:
    """Rows in all tables; 0 while the tables do not exist yet."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return 0
    try:
        total = 0
        for table in TABLES:
            total += await conn.fetchval(f"SELECT count(*) FROM {table}")
        return total
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def read_topic(
    bootstrap: str, topic: str, expected: int | None = None
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` (e.g. the DLQ): until `expected` arrived (an error if they do
    not within 5 s), or, without `expected`, until 3 s pass with nothing new."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: list[ConsumerRecord[bytes, bytes]] = []
        while expected is None or len(got) < expected:
            fetched = await consumer.getmany(timeout_ms=5000 if expected else 3000)
            if not fetched and expected is None:
                break
            assert fetched, f"only {len(got)} of {expected} records arrived"
            got.extend(r for records in fetched.values() for r in records)
        return got
    finally:
        await consumer.stop()
