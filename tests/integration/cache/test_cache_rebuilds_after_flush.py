"""After FLUSHALL the cache rebuilds the open day from TimescaleDB and re-reads from Kafka
what SQL does not hold yet; the result equals what it had before, key for key.

Runs on a private redis-server: FLUSHALL must not touch the shared one.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from helpers.cache import (
    RedisNamespace,
    buckets_of,
    cache_settings,
    migrated,
    produce,
    rebuildable,
    recent_start,
    running_cache,
    snapshot,
)
from helpers.common import DatabaseFactory, unique
from helpers.disposable import disposable_redis
from helpers.sink import run_sink_until, sink_settings


async def test_after_flushall_the_rebuilt_aggregates_equal_those_before(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    dsn = await migrated(await make_database("local"))
    start = recent_start(300)
    in_sql = list(readings(seed_fleet(), start, seconds=90))
    kafka_only = list(readings(seed_fleet(), start + timedelta(seconds=90), 30, seed=2))
    await produce(settings.kafka_bootstrap, telemetry_prefix, in_sql)

    with disposable_redis(tmp_path) as server:
        ns = RedisNamespace(server.url, unique("cache"))
        cfg = cache_settings(settings, topic_prefix=telemetry_prefix, dsn=dsn, redis=ns)
        async with running_cache(cfg) as run:
            await run.wait_for_counts(applied=len(in_sql))

            async def all_rows(_: SinkService) -> bool:
                conn = await asyncpg.connect(dsn)
                try:
                    n = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES]
                finally:
                    await conn.close()
                return bool(sum(n) == len(in_sql))

            await run_sink_until(
                sink_settings(settings, "local", dsn, telemetry_prefix, unique("g")), all_rows
            )
            # These reach the cache but not SQL: the rebuild cannot know them.
            await produce(settings.kafka_bootstrap, telemetry_prefix, kafka_only)
            await run.wait_for_counts(applied=len(in_sql) + len(kafka_only))
            before = rebuildable(await snapshot(ns.url, ns.prefix), ns.prefix)
            assert len(buckets_of(before, ns.prefix)) > 4 * 62

            client = aioredis.Redis.from_url(server.url)
            try:
                await client.flushall()
            finally:
                await client.aclose()

            async def same_as_before() -> bool:
                after = rebuildable(await snapshot(ns.url, ns.prefix), ns.prefix)
                return bool(after == before and run.total("rebuilds") == 2)

            await run.wait_until(same_as_before, "the rebuilt cache equals the old one")
            # Re-read from Kafka, and already rebuilt from SQL: counted as duplicates.
            await run.wait_for_counts(duplicates=len(in_sql))
