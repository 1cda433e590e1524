"""A reading from a clock-glitched device (an hour ahead) is neither aggregated nor allowed
to pin the device's latest reading: the cache applies the sink's slot bounds."""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.codec import decode_reading
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from helpers.cache import (
    buckets_of,
    cache_settings,
    migrated,
    produce,
    recent_start,
    redis_namespace,
    running_cache,
    snapshot,
)
from helpers.common import DatabaseFactory

DEVICE = "site1/bank1/rack1"


async def test_a_reading_from_the_future_is_counted_and_left_out(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
) -> None:
    dsn = await migrated(await make_database("local"))
    start = recent_start(120)
    good = [r for r in readings(seed_fleet(), start, seconds=40) if r.device.key == DEVICE]
    ahead = timedelta(hours=1)
    glitched = good[19].model_copy(
        update={"ts": good[19].ts + ahead, "read_at": good[19].read_at + ahead}
    )
    # 20 s of readings, the glitch, then 20 s more: the later ones must still be "latest".
    await produce(settings.kafka_bootstrap, telemetry_prefix, [*good[:20], glitched, *good[20:]])
    async with redis_namespace(settings.redis_url.get_secret_value()) as ns:
        async with running_cache(
            cache_settings(
                settings, topic_prefix=telemetry_prefix, dsn=dsn, redis=ns, sink_max_future_s=300
            )
        ) as run:
            await run.wait_for_counts(applied=len(good))
            assert run.total("applied") == len(good)  # the glitch is not among them
            await run.wait_for_counts(out_of_bounds=1)
        client = aioredis.Redis.from_url(ns.url)
        try:
            latest = await client.get(f"{ns.prefix}:latest:{DEVICE}")
            newest = await client.zscore(f"{ns.prefix}:devices:site1", DEVICE)
        finally:
            await client.aclose()
        assert isinstance(latest, bytes)
        assert decode_reading(latest, DEVICE.encode()).ts == good[-1].ts
        assert newest == good[-1].ts.timestamp()
        snap = await snapshot(ns.url, ns.prefix)
        minutes = {
            bucket: agg
            for (res, series, bucket), agg in buckets_of(snap, ns.prefix).items()
            if res == "1m" and series == f"dev:{DEVICE}"
        }
        assert sum(agg["soc"].n for agg in minutes.values()) == len(good)
        assert max(minutes) < int((good[-1].ts + timedelta(minutes=1)).timestamp())
