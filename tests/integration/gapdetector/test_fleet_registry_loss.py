"""Expected = slots in service, from the fleet registry (real Kafka, both clusters):
commissioning, retirement, maintenance, a dead site that stays critical across a
restart until it is retired, `essctl fleet` refusing bad input, site time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import Fleet, readings
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from ess_loss.lossmath import SlotCounts
from helpers.common import DatabaseFactory
from helpers.gap import (
    detector_settings,
    essctl,
    execute,
    fetch,
    fetchval,
    fill_both_clusters,
    minute_ago,
    new_detector,
    pipeline,
    produce,
    register_fleet,
    run_until,
    table_counts,
)

FLEET = Fleet({"site1": {1: 2}, "site2": {1: 2}})
NEW = "site1/bank1/rack2"  # commissioned 30 s into the window
OLD = "site1/bank1/rack1"  # retired 20 s into the window (operator, essctl)
SITE2_RACKS = ("site2/bank1/rack1", "site2/bank1/rack2")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_commissioning_retirement_and_maintenance_shape_what_is_expected(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(15)
    window = Window(int(t0.timestamp()), "minute")
    sent = [
        r
        for r in readings(FLEET, t0, seconds=60)
        if not (r.device.key == NEW and r.ts < t0 + timedelta(seconds=30))
    ]
    expected_rows = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database, fleet=None) as clusters:
        await register_fleet(clusters, FLEET, t0 - timedelta(days=1), {"site2": "Asia/Seoul"})
        for dsn in (clusters.local, clusters.cloud):  # NEW was installed later
            await execute(
                dsn,
                "UPDATE fleet_device SET commissioned_at = $2 WHERE device_id = $1",
                NEW,
                t0 + timedelta(seconds=30),
            )
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected_rows)
        before = (await table_counts(clusters.local), await table_counts(clusters.cloud))

        # essctl fleet: bad input changes nothing (exit 2, one line)
        bad = [
            ["fleet", "retire", "site9/bank1/rack1"],
            ["fleet", "retire", "not a device"],
            ["fleet", "retire", OLD, "--at", _iso(t0 - timedelta(days=3))],
            ["fleet", "maintenance", "add", "--site", "nosuch", "--reason", "x"],
            ["fleet", "maintenance", "add", "--site", "site2", "--device", OLD, "--reason", "x"],
            ["fleet", "maintenance", "add", "--site", "site2", "--from", _iso(t0), "--to",
             _iso(t0), "--reason", "x"],
            ["fleet", "maintenance", "end", "nosuchid"],
        ]  # fmt: skip
        registry_before = await fetch(clusters.cloud, "SELECT * FROM fleet_device ORDER BY 1")
        for args in bad:
            result = essctl(args, topic_prefix, clusters)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
            assert result.stdout == ""
        assert await fetch(clusters.cloud, "SELECT * FROM fleet_device ORDER BY 1") == (
            registry_before
        )
        assert await fetchval(clusters.local, "SELECT count(*) FROM fleet_maintenance") == 0

        retired = essctl(
            ["fleet", "retire", OLD, "--at", _iso(t0 + timedelta(seconds=20)), "--json"],
            topic_prefix,
            clusters,
        )
        assert retired.returncode == 0, retired.stderr
        opened = essctl(
            ["fleet", "maintenance", "add", "--site", "site2", "--from",
             _iso(t0 + timedelta(seconds=10)), "--to", _iso(t0 + timedelta(seconds=40)),
             "--reason", "inverter swap", "--json"],
            topic_prefix,
            clusters,
        )  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        maintenance_id = orjson.loads(opened.stdout)["id"]
        listed = essctl(["fleet", "maintenance", "list", "--json"], topic_prefix, clusters)
        assert [m["id"] for m in orjson.loads(listed.stdout)] == [maintenance_id]
        devices = orjson.loads(essctl(["fleet", "list", "--json"], topic_prefix, clusters).stdout)
        assert {d["device"]: d["retired_at"] is not None for d in devices}[OLD]
        assert {d["site"]: d["time_zone"] for d in devices}["site2"] == "Asia/Seoul"
        for dsn in (clusters.local, clusters.cloud):  # written to both clusters
            assert await fetchval(dsn, "SELECT count(*) FROM fleet_maintenance") == 1
        table = essctl(["fleet", "list", "--site", "site1"], topic_prefix, clusters)
        assert table.returncode == 0
        assert OLD in table.stdout

        detector = new_detector(
            detector_settings(settings, topic_prefix, clusters, gap_registry_refresh_s=1.0)
        )

        def evaluated(d: GapDetectorService) -> bool:
            return any(r.table == "rack" and r.window == window for r in d.results)

        await run_until(detector, evaluated)
        rack = next(r for r in detector.results if r.table == "rack" and r.window == window)
        by_device = {d.device: d for d in rack.loss.devices}
        for cluster in ("local", "cloud"):
            assert by_device[NEW].counts[cluster] == SlotCounts(30, 30, 30)  # from commissioning
            assert by_device[OLD].counts[cluster] == SlotCounts(20, 20, 20)  # until retirement
            for device in SITE2_RACKS:  # 30 s in maintenance: not expected, listed apart
                assert by_device[device].counts[cluster] == SlotCounts(30, 30, 30, maintenance=30)
            assert rack.loss.total(cluster).total_loss == 0
            assert rack.loss.total(cluster).severity == "ok"

        # a window after OLD's retirement does not expect it at all
        later = Window(window.start_s + 60, "minute")
        after = await detector.evaluate_one("rack", later)
        assert after is not None
        assert OLD not in {d.device for d in after.loss.devices}
        await detector.close()
        assert (await table_counts(clusters.local), await table_counts(clusters.cloud)) == before

        ended = essctl(["fleet", "maintenance", "end", maintenance_id], topic_prefix, clusters)
        assert ended.returncode == 2  # it already ended (at --to)
        assert "already ended" in ended.stderr


async def test_a_dead_site_stays_critical_across_restarts_until_retired(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(12)
    window = Window(int(t0.timestamp()), "minute")
    # site2's simulator is stopped: only site1 sends anything
    sent = [r for r in readings(FLEET, t0, seconds=60) if r.device.site == "site1"]
    expected_rows = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database, fleet=FLEET) as clusters:
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected_rows)
        s = detector_settings(settings, topic_prefix, clusters)
        for _ in range(2):  # the first detector, then a restarted one (fresh memory)
            detector = new_detector(s)
            await run_until(
                detector,
                lambda d: {r.table for r in d.results if r.window == window} == set(TABLES),
            )
            for result in (r for r in detector.results if r.window == window):
                for cluster in ("local", "cloud"):
                    site2 = result.loss.by_site(cluster)["site2"]
                    assert site2.expected > 0
                    assert site2.present == 0
                    assert site2.source_pct == 100.0
                    assert site2.severity == "critical"
            gauge = detector.metrics.loss.labels("local", "site2", "rack", "minute", "source")
            assert gauge._value.get() == 1.0
        for device in [d.key for d in FLEET.devices() if d.site == "site2"]:
            done = essctl(["fleet", "retire", device, "--at", _iso(t0)], topic_prefix, clusters)
            assert done.returncode == 0, done.stderr
        detector.registry = None  # the same detector re-reads the registry
        for table in TABLES:
            again = await detector.evaluate_one(table, window)
            assert again is not None
            assert "site2" not in again.sites
            assert again.loss.total("local").total_loss == 0
        await detector.close()
        samples = {
            tuple(sample.labels.values())
            for metric in detector.metrics.loss.collect()
            for sample in metric.samples
        }
        assert not any("site2" in labels for labels in samples)


async def test_a_site_in_seoul_gets_its_daily_report_for_the_local_day(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(10)
    sent = list(readings(FLEET, t0, seconds=30))
    expected_rows = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database, fleet=None) as clusters:
        await register_fleet(clusters, FLEET, t0, {"site2": "Asia/Seoul"})
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected_rows)
        detector = new_detector(
            detector_settings(settings, topic_prefix, clusters, gap_periods=("minute", "day"))
        )
        await run_until(detector, lambda d: d.registry is not None)
        seoul = ZoneInfo("Asia/Seoul")
        local_midnight = datetime.fromtimestamp(t0.timestamp(), seoul).replace(
            hour=0, minute=0, second=0
        )
        day = Window(int(local_midnight.timestamp()), "day", "Asia/Seoul")
        result = await detector.evaluate_one("rack", day)
        assert result is not None
        assert result.sites == {"site2"}  # only the Seoul site's day
        await detector.close()
        rows = await fetch(
            clusters.cloud,
            "SELECT period_start, time_zone, site, expected, present FROM loss_report"
            " WHERE period = 'day' AND table_name = 'rack' AND device_id = '*' AND site <> '*'"
            " AND cluster = 'local'",
        )
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (local_midnight.astimezone(UTC), "Asia/Seoul", "site2")
        ]
        # expected: from commissioning (t0) to the end of the local day, 2 racks
        day_end = local_midnight + timedelta(days=1)
        assert rows[0][3] == 2 * int((day_end - t0).total_seconds())
        assert rows[0][4] == 2 * 30
