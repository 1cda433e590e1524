"""Rows gone from both clusters for a range Kafka no longer holds (its records deleted, as
retention does): `essctl archive verify` names them, `essctl archive restore` puts them
back once (dry run first, a second run inserts nothing), and the gap detector's last
fallback restores what neither Kafka nor the other cluster can give back, after which the
window's loss is back to its source loss (none here)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from ess_archive.bootstrap import bootstrap as archive_bootstrap
from ess_archive.service import ArchiveService
from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from helpers.archive import archive_settings, private_prefix
from helpers.common import DatabaseFactory, unique
from helpers.gap import (
    SMALL_FLEET,
    delete_topic_data,
    detector_settings,
    essctl,
    execute,
    fill_both_clusters,
    minute_ago,
    new_detector,
    pipeline,
    produce,
    run_until,
    table_counts,
)
from helpers.sink import counter_total
from helpers.sink import run_until as run_service_until

RACK = "site1/bank1/rack1"
METER = "site2/etc1"


async def test_restore_and_the_detector_put_back_what_only_the_archive_holds(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(20)
    sent = list(readings(SMALL_FLEET, t0, seconds=120))
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with (
        pipeline(settings, topic_prefix, make_database) as clusters,
        private_prefix() as store,
    ):
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected)

        async def archived(service: ArchiveService) -> bool:
            return counter_total(service, "rows_archived") >= len(sent)

        archive = archive_bootstrap(
            archive_settings(settings, store, topic_prefix, unique("g-archive")),
            CollectorRegistry(),
        )
        await run_service_until(archive, archived, timeout_s=60)
        for dsn in (clusters.local, clusters.cloud):  # lost in both clusters
            await execute(
                dsn,
                "DELETE FROM rack WHERE device_id = $1 AND ts >= $2 AND ts < $3",
                RACK,
                t0 + timedelta(seconds=10),
                t0 + timedelta(seconds=40),
            )
        await execute(
            clusters.cloud,
            "DELETE FROM etc WHERE device_id = $1 AND ts >= $2",
            METER,
            t0 + timedelta(seconds=60),
        )
        await execute(
            clusters.local,
            "DELETE FROM etc WHERE device_id = $1 AND ts >= $2",
            METER,
            t0 + timedelta(seconds=60),
        )
        env = {"ESS_ARCHIVE_S3_PREFIX": store.archive_s3_prefix}

        def run(*args: str) -> dict[str, Any]:
            done = essctl(["archive", *args, "--json"], topic_prefix, clusters, extra_env=env)
            assert done.returncode in (0, 1), done.stderr
            doc: dict[str, Any] = orjson.loads(done.stdout)
            doc["exit"] = done.returncode
            return doc

        # 1. the operator: verify names the lost slots, restore puts the rack ones back
        span = ["--from", t0.isoformat(), "--to", (t0 + timedelta(seconds=60)).isoformat()]
        verify = run("verify", "--cluster", "local", "--table", "rack", *span)
        assert verify["exit"] == 1
        assert [(d["site"], d["extra"], d["missing"]) for d in verify["days"] if d["extra"]] == [
            ("site1", 30, 0)
        ]
        listed = run("list", "--table", "rack")
        assert sum(d["rows"] for d in listed["days"]) == expected["rack"]
        dry = run("restore", "--cluster", "local", "--table", "rack", "--dry-run", *span)
        assert [(r["table"], r["missing"], r["inserted"]) for r in dry["results"]] == [
            ("rack", 30, 0)
        ]
        assert (await table_counts(clusters.local))["rack"] == expected["rack"] - 30
        real = run("restore", "--cluster", "local", "--table", "rack", *span)
        assert [(r["missing"], r["inserted"]) for r in real["results"]] == [(30, 30)]
        again = run("restore", "--cluster", "local", "--table", "all", *span)
        assert all(r["inserted"] == 0 for r in again["results"])
        assert run("verify", "--cluster", "local", "--table", "rack", *span)["exit"] == 0

        # 2. the detector: Kafka forgets everything once it has read it; the cloud's rack
        #    gap comes from local (sync), the meter's minute from the archive.
        w2 = Window(int(t0.timestamp()) + 60, "minute")  # the meter's lost minute
        detector = new_detector(
            detector_settings(
                settings,
                topic_prefix,
                clusters,
                gap_settle_s=5.0,
                **{k: v for k, v in store.model_dump().items() if k.startswith("archive_")},
            )
        )

        async def delete_kafka_data_once_read(d: GapDetectorService) -> None:
            while not (d.feed.caught_up_at and d.tracker.block_count):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await delete_topic_data(settings, topic_prefix)

        def healed(d: GapDetectorService) -> bool:
            closed = set(d.healer.history.closed)
            # local is healed first, from the archive; cloud then finds the rows in local
            cloud_etc = {("cloud", "etc", how, 60) for how in ("sync", "archive")}
            done = (
                ("local", "etc", "archive", 60) in closed
                and bool(cloud_etc & closed)
                and ("cloud", "rack", "sync", 30) in closed
            )
            latest = [r for r in d.results if r.table == "etc" and r.window == w2][-1:]
            return done and bool(latest) and _sink_loss(latest[0].loss) == {"local": 0, "cloud": 0}

        await run_until(detector, healed, after_start=delete_kafka_data_once_read, timeout_s=120)
        assert detector.healer.history.requests == []  # Kafka could not help
        assert detector.healer.history.unclosed == []
        assert await table_counts(clusters.local) == expected
        assert await table_counts(clusters.cloud) == expected
        evaluations = [r for r in detector.results if r.table == "etc" and r.window == w2]
        assert evaluations[0].loss.by_site("local")["site2"].sink_loss == 60
        last = evaluations[-1].loss
        for cluster in ("local", "cloud"):
            site = last.by_site(cluster)["site2"]
            assert (site.sink_loss, site.source_loss) == (0, 0), cluster


def _sink_loss(loss: Any) -> dict[str, int]:
    return {c: loss.by_site(c)["site2"].sink_loss for c in ("local", "cloud")}
