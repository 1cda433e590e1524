"""Rows missing from the cloud cluster that Kafka no longer has: `essctl sync` and the
detector's fallback copy them from the local cluster, once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson

from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from helpers.common import DatabaseFactory
from helpers.gap import (
    SMALL_FLEET,
    delete_topic_data,
    detector_settings,
    essctl,
    execute,
    fill_both_clusters,
    fingerprint,
    minute_ago,
    new_detector,
    pipeline,
    produce,
    run_until,
    table_counts,
)


async def test_sync_and_detector_fallback_copy_what_kafka_lost(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(20)
    sent = list(readings(SMALL_FLEET, t0, seconds=120))
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database) as clusters:
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected)
        await execute(
            clusters.cloud,
            "DELETE FROM rack WHERE device_id = 'site1/bank1/rack1' AND ts >= $1 AND ts < $2",
            t0 + timedelta(seconds=10),
            t0 + timedelta(seconds=40),
        )
        await execute(
            clusters.cloud,
            "DELETE FROM etc WHERE device_id = 'site2/etc1' AND ts >= $1",
            t0 + timedelta(seconds=60),
        )
        local_before = await fingerprint(clusters.local)

        # The detector reads Kafka while it still has the data; then retention strikes.
        detector = new_detector(
            detector_settings(settings, topic_prefix, clusters, gap_settle_s=5.0)
        )

        async def delete_kafka_data_once_read(d: GapDetectorService) -> None:
            while not (d.feed.caught_up_at and d.tracker.block_count):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # polling another task's state: read it all first
            assert not [r for r in d.results if r.table == "etc"]  # still settling
            await delete_topic_data(settings, topic_prefix)

        # 1. The operator's sync (before the detector looks): the rack gap, minute 1.
        start, end = t0.isoformat(), (t0 + timedelta(seconds=60)).isoformat()
        args = ["sync", "--from", "local", "--to", "cloud", "--start", start, "--end", end]
        dry = essctl([*args, "--table", "rack", "--dry-run", "--json"], topic_prefix, clusters)
        assert dry.returncode == 0, dry.stderr
        assert [
            (r["table"], r["missing"], r["inserted"]) for r in orjson.loads(dry.stdout)["results"]
        ] == [("rack", 30, 0)]
        assert (await table_counts(clusters.cloud))["rack"] == expected["rack"] - 30
        real = essctl([*args, "--json"], topic_prefix, clusters)
        assert real.returncode == 0, real.stderr
        inserted = {r["table"]: r["inserted"] for r in orjson.loads(real.stdout)["results"]}
        assert inserted == {"bank": 0, "rack": 30, "pcs": 0, "etc": 0}
        again = essctl([*args, "--json", "--both"], topic_prefix, clusters)
        assert again.returncode == 0, again.stderr
        assert all(r["inserted"] == 0 for r in orjson.loads(again.stdout)["results"])

        # 2. The detector finds the etc gap in minute 2, sees Kafka no longer has it,
        #    and copies it from local instead of asking for a replay.
        def closed(d: GapDetectorService) -> bool:
            return ("cloud", "etc", "sync", 60) in d.healer.history.closed

        await run_until(detector, closed, after_start=delete_kafka_data_once_read)
        assert detector.healer.history.requests == []
        assert detector.healer.history.unclosed == []
        w2 = Window(int(t0.timestamp()) + 60, "minute")
        first = next(r for r in detector.results if r.table == "etc" and r.window == w2)
        assert first.loss.by_site("cloud")["site2"].sink_loss == 60

        assert await table_counts(clusters.cloud) == expected
        assert await table_counts(clusters.local) == expected
        assert await fingerprint(clusters.local) == local_before
