"""After a flush the cache rebuilds from SQL what the local sink group has committed, and
re-reads Kafka from exactly those offsets, per partition: a partition whose sink lags, and
a stretch SQL holds only later (the sink has not committed it), are not lost.

The "sink" here is SQL rows written directly plus offsets committed for a sink group:
what a real sink leaves behind, arranged exactly. Runs on a private redis-server
(FLUSHALL must not touch the shared one).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.codec import encode_reading
from ess_common.model import TABLES, Reading
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_common.topics import telemetry_topic
from ess_tables.rows import to_rows
from ess_tables.writer import prepare_staging, write_rows
from helpers.cache import (
    RedisNamespace,
    cache_settings,
    migrated,
    rebuildable,
    recent_start,
    running_cache,
    snapshot,
)
from helpers.common import DatabaseFactory, unique
from helpers.disposable import disposable_redis

Placed = tuple[Reading, TopicPartition, int]


async def _produce(bootstrap: str, prefix: str, sent: list[Reading]) -> list[Placed]:
    """Send with record timestamps at the slots, as a live collector's records have."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        acks = [
            await producer.send(
                telemetry_topic(r.table, prefix),
                value=encode_reading(r),
                key=r.device.key.encode(),
                timestamp_ms=int(r.read_at.timestamp() * 1000),
            )
            for r in sent
        ]
        metas = [await ack for ack in acks]
    finally:
        await producer.stop()
    return [
        (r, TopicPartition(m.topic, m.partition), m.offset)
        for r, m in zip(sent, metas, strict=True)
    ]


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def _write_sql(dsn: str, rows: list[Reading]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_staging(conn)
        for table in TABLES:
            await write_rows(conn, table, to_rows(r for r in rows if r.table == table))
    finally:
        await conn.close()


async def test_a_lagging_partition_and_a_stretch_sql_lacks_are_re_read_from_kafka(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    dsn = await migrated(await make_database("local"))
    start = recent_start(600)
    # longer than the old 300 s re-read margin, so a time-based rewind would skip data
    sent = list(readings(seed_fleet(), start, seconds=480))
    placed = await _produce(settings.kafka_bootstrap, telemetry_prefix, sent)
    rack = telemetry_topic("rack", telemetry_prefix)
    lagging, gapped = TopicPartition(rack, 0), TopicPartition(rack, 1)
    lag_from = start + timedelta(seconds=60)  # this partition's sink is 7 minutes behind
    gap = (start + timedelta(seconds=100), start + timedelta(seconds=150))

    in_sql: list[Reading] = []
    committed: dict[TopicPartition, int] = defaultdict(int)
    for reading, tp, offset in placed:
        if tp == lagging and reading.ts >= lag_from:
            continue  # not consumed by the sink yet
        if tp == gapped and gap[0] <= reading.ts < gap[1]:
            continue  # in Kafka, reaches SQL only later (the sink has not committed it)
        in_sql.append(reading)
        if tp != gapped or reading.ts < gap[0]:
            committed[tp] = max(committed[tp], offset + 1)
    assert len(in_sql) < len(sent) - 100
    sink_group = unique("sink")

    with disposable_redis(tmp_path) as server:
        ns = RedisNamespace(server.url, unique("cache"))
        cfg = cache_settings(
            settings,
            topic_prefix=telemetry_prefix,
            dsn=dsn,
            redis=ns,
            cache_rebuild_sink_group=sink_group,
        )
        async with running_cache(cfg) as run:
            await run.wait_for_counts(applied=len(sent))
            before = rebuildable(await snapshot(ns.url, ns.prefix), ns.prefix)
            # The sink's state when Redis is flushed: its rows in SQL, its offsets committed.
            await _write_sql(dsn, in_sql)
            await _commit(settings.kafka_bootstrap, sink_group, dict(committed))
            client = aioredis.Redis.from_url(server.url)
            try:
                await client.flushall()
            finally:
                await client.aclose()

            async def rebuilt() -> bool:
                return run.total("rebuilds") >= 2

            await run.wait_until(rebuilt, "the rebuild")
            # Everything SQL lacked comes back from Kafka; what it held is a duplicate.
            await run.wait_for_counts(applied=len(sent) + len(sent) - len(in_sql))
            after = rebuildable(await snapshot(ns.url, ns.prefix), ns.prefix)
            assert sorted(set(before) ^ set(after)) == []
            assert after == before
