"""Replaying the same messages leaves every aggregate, bitmap, latest reading and anomaly
feed as it was."""

from __future__ import annotations

from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

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


async def test_replaying_the_same_messages_changes_no_aggregate(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    # Staleness depends on the wall clock, not on the messages: keep it out of the comparison.
    rules = tmp_path / "rules.yaml"
    rules.write_text("device_stale: {enabled: false}\n")
    dsn = await migrated(await make_database("local"))
    sent = list(readings(seed_fleet(), recent_start(), seconds=90))
    await produce(settings.kafka_bootstrap, telemetry_prefix, sent)
    async with redis_namespace(settings.redis_url.get_secret_value()) as ns:
        async with running_cache(
            cache_settings(
                settings,
                topic_prefix=telemetry_prefix,
                dsn=dsn,
                redis=ns,
                cache_rules_file=rules,
            )
        ) as run:
            await run.wait_for_counts(applied=len(sent))
            assert run.total("applied") == len(sent)
            assert run.total("duplicates") == 0
        before = await snapshot(ns.url, ns.prefix)
        feeds = [n for k, n in before.items() if k.startswith(f"{ns.prefix}:anomalies:")]
        assert sum(feeds) > 0  # random synthetic SoC jumps: replays must not repeat them
        assert len(buckets_of(before, ns.prefix)) > 4 * 62  # every device, 4 resolutions

        # The topics now hold every message twice, and a new group reads them all.
        await produce(settings.kafka_bootstrap, telemetry_prefix, sent)
        async with running_cache(
            cache_settings(
                settings,
                topic_prefix=telemetry_prefix,
                dsn=dsn,
                redis=ns,
                cache_rules_file=rules,
            )
        ) as run:
            await run.wait_for_counts(duplicates=2 * len(sent))
            assert run.total("applied") == 0
            assert run.total("anomalies") == 0
        assert await snapshot(ns.url, ns.prefix) == before
