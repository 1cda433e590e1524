"""What a Redis flush loses, exactly (docs/cache.md): the anomaly feeds, and the buckets
and bitmaps of days that had closed; everything of the open days comes back as it was.

A first cache run with a three-day window aggregates a day two days back (its
1 h and 1 d buckets survive their TTLs) and raises two anomalies; both days go
to SQL. A second run, same group and keys, keeps only today open; then FLUSHALL.
After its rebuild the cache equals the first run's state minus exactly those
keys, and re-read readings raise no anomaly again.

Runs on a private redis-server: FLUSHALL must not touch the shared one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from ess_cache.window import Retention
from ess_cache_layout.keys import parse_agg_key
from ess_cache_layout.measures import DAY_S
from ess_common.model import TABLES, Reading
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from helpers.cache import (
    RedisNamespace,
    cache_settings,
    migrated,
    produce,
    recent_start,
    running_cache,
    snapshot,
)
from helpers.common import DatabaseFactory, unique
from helpers.disposable import disposable_redis
from helpers.sink import run_sink_until, sink_settings

HOT_C = 61.5  # above module_temperature.max_c (50): one anomaly per hot reading


def _heated(batch: list[Reading], device: str, at: datetime) -> list[Reading]:
    """`batch` with one rack reading made too hot."""
    hot = {"module_t_max_c": HOT_C}

    def heat(r: Reading) -> Reading:
        return r.model_copy(update={"values": r.values.model_copy(update=hot)})

    return [heat(r) if r.device.key == device and r.ts == at else r for r in batch]


def _closed_day_keys(snap: dict[str, Any], prefix: str, open_from: int) -> set[str]:
    """Buckets starting before the first open slot, and the closed days' dedupe bitmaps."""
    doomed = set()
    for key in snap:
        agg = key.startswith(f"{prefix}:agg:")
        if (agg and parse_agg_key(key, prefix)[2] < open_from) or (
            key.startswith(f"{prefix}:seen:") and int(key.rsplit(":", 1)[1]) < open_from
        ):
            doomed.add(key)
    return doomed


async def _sql_holds(dsn: str, count: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        n = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES]
    finally:
        await conn.close()
    return bool(sum(n) == count)


async def test_a_flush_loses_the_anomaly_feeds_and_the_closed_days_and_nothing_else(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    dsn = await migrated(await make_database("local"))
    now = int(datetime.now(UTC).timestamp())
    two_days_back = datetime.fromtimestamp(now - now % DAY_S - 2 * DAY_S + 10 * 3600, UTC)
    recent = recent_start(300)
    rack = "site1/bank1/rack1"
    old = _heated(list(readings(seed_fleet(), two_days_back, 20)), rack, two_days_back)
    today = _heated(list(readings(seed_fleet(), recent, 40, seed=3)), rack, recent)
    sent = old + today
    await produce(settings.kafka_bootstrap, telemetry_prefix, sent)
    rules = tmp_path / "rules.yaml"  # synthetic SoC wanders: no jump alarms from it
    rules.write_text("soc_jump: {enabled: false}\ndevice_stale: {enabled: false}\n")

    with disposable_redis(tmp_path) as server:
        ns = RedisNamespace(server.url, unique("cache"))
        group = unique("cache")

        def settings_with(window_days: int) -> Any:
            return cache_settings(
                settings,
                topic_prefix=telemetry_prefix,
                dsn=dsn,
                redis=ns,
                group=group,
                cache_window_days=window_days,
                cache_rules_file=rules,
            )

        async with running_cache(settings_with(3)) as first:
            await first.wait_for_counts(applied=len(sent), anomalies=2)

            async def all_rows(_: SinkService) -> bool:
                return await _sql_holds(dsn, len(sent))

            await run_sink_until(
                sink_settings(settings, "local", dsn, telemetry_prefix, unique("g")), all_rows
            )
        before = await snapshot(ns.url, ns.prefix)
        feeds = {k: n for k, n in before.items() if k.startswith(f"{ns.prefix}:anomalies:")}
        assert feeds == {f"{ns.prefix}:anomalies:site1": 2}
        second_settings = settings_with(1)
        open_from = Retention(
            second_settings.ttl_by_resolution, 1, second_settings.cache_late_s
        ).accept_from(now)
        closed = _closed_day_keys(before, ns.prefix, open_from)
        resolutions = {parse_agg_key(k, ns.prefix)[0] for k in closed if ":agg:" in k}
        assert resolutions == {"1h", "1d"}  # the closed day's finer buckets had expired

        async with running_cache(second_settings) as second:
            await _flush(server.url)
            expected = {k: v for k, v in before.items() if k not in closed and k not in feeds}

            async def rebuilt_as_the_rule_says() -> bool:
                after = await snapshot(ns.url, ns.prefix)
                return bool(after == expected and second.total("rebuilds") >= 1)

            await second.wait_until(rebuilt_as_the_rule_says, "open days rebuilt, rest lost")
            # the rebuild marked SQL's readings as seen: nothing was applied or raised again
            assert second.total("anomalies") == 0
            assert second.total("applied") == 0


async def _flush(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
