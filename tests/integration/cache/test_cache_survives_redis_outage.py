"""Redis away: the cache holds its batch, commits nothing, retries with backoff. Redis back
as it was (a pause): it goes on. Redis back empty (a restart): it rebuilds and re-reads.
Either way every reading counts exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from helpers.cache import (
    RedisNamespace,
    buckets_of,
    cache_settings,
    migrated,
    produce,
    recent_start,
    running_cache,
    snapshot,
)
from helpers.common import DatabaseFactory, unique
from helpers.disposable import disposable_redis


async def _committed(admin: AIOKafkaAdminClient, group: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


async def test_redis_outage_holds_commits_and_the_cache_catches_up_exactly(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    dsn = await migrated(await make_database("local"))
    start = recent_start(300)
    before_outage = list(readings(seed_fleet(), start, seconds=30))
    during_pause = list(readings(seed_fleet(), start + timedelta(seconds=30), 20, seed=2))
    during_outage = list(readings(seed_fleet(), start + timedelta(seconds=50), 30, seed=3))
    await produce(settings.kafka_bootstrap, telemetry_prefix, before_outage)
    group = unique("cache")
    with disposable_redis(tmp_path) as server:
        ns = RedisNamespace(server.url, unique("cache"))
        cfg = cache_settings(
            settings,
            topic_prefix=telemetry_prefix,
            dsn=dsn,
            redis=ns,
            group=group,
            cache_redis_timeout_s=1.0,
            cache_retry_max_s=1.0,
        )
        async with running_cache(cfg) as run:
            await run.wait_for_counts(applied=len(before_outage))
            await run.wait_until(
                lambda: _reached(kafka_admin, group, len(before_outage)), "first commit"
            )
            # Redis stops answering for a few seconds, then goes on with its data.
            pauser = aioredis.Redis.from_url(server.url)
            try:
                await pauser.client_pause(5000, all=True)
            finally:
                await pauser.aclose()
            await produce(settings.kafka_bootstrap, telemetry_prefix, during_pause)
            await run.wait_for_counts(redis_errors=1)
            assert await _committed(kafka_admin, group) == len(before_outage)
            so_far = len(before_outage) + len(during_pause)
            await run.wait_until(lambda: _reached(kafka_admin, group, so_far), "after the pause")
            assert run.total("rebuilds") == 1  # the data was still there: no rebuild

            server.stop()
            errors = run.total("redis_errors")
            await produce(settings.kafka_bootstrap, telemetry_prefix, during_outage)
            await run.wait_for_counts(redis_errors=errors + 3)
            await asyncio.sleep(2)
            assert await _committed(kafka_admin, group) == so_far
            assert not run.service.health().ok

            server.start()  # empty, as after a restart without persistence
            total = so_far + len(during_outage)
            await run.wait_until(
                lambda: _reached(kafka_admin, group, total), "commits after the outage"
            )
            await run.wait_for_counts(rebuilds=2)
            assert run.service.health().ok
            buckets = buckets_of(await snapshot(ns.url, ns.prefix), ns.prefix)
    counted = sum(
        b["voltage"].n
        for (res, series, _), b in buckets.items()
        if res == "1d" and series.startswith("dev:")
    )
    assert counted == total


async def _reached(admin: AIOKafkaAdminClient, group: str, n: int) -> bool:
    return await _committed(admin, group) >= n
