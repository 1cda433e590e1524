"""A device muted at the source: its loss is source loss with the right percentage,
nobody is asked to replay it, and nothing is invented in either cluster."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from ess_loss.lossmath import SlotCounts
from helpers.common import DatabaseFactory
from helpers.gap import (
    SMALL_FLEET,
    detector_settings,
    fetch,
    fetchval,
    fill_both_clusters,
    minute_ago,
    new_detector,
    pipeline,
    produce,
    replay_worker,
    run_until,
)

MUTED = "site1/pcs1"


async def test_a_muted_device_is_source_loss_only(
    settings: CommonSettings,
    topic_prefix: str,
    make_database: DatabaseFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    t0 = minute_ago(20)
    window = Window(int(t0.timestamp()), "minute")
    # site1/pcs1 answers seconds 0-19 and 50-59 only: 30 of 60 slots never reach Kafka.
    sent = [
        r
        for r in readings(SMALL_FLEET, t0, seconds=60)
        if not (r.device.key == MUTED and 20 <= (r.ts - t0).total_seconds() < 50)
    ]
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database) as clusters:
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected)
        detector = new_detector(detector_settings(settings, topic_prefix, clusters))
        workers = [replay_worker(settings, "local", clusters, topic_prefix)]

        def evaluated_all(d: GapDetectorService) -> bool:
            return {r.table for r in d.results if r.window == window} == set(TABLES)

        with caplog.at_level(logging.INFO, logger="ess_gapdetector.report"):
            await run_until(detector, evaluated_all, replay_workers=workers)

        pcs = next(r for r in detector.results if r.table == "pcs" and r.window == window)
        for cluster in ("local", "cloud"):
            by_site = pcs.loss.by_site(cluster)
            assert by_site["site1"] == SlotCounts(60, 30, 30)
            assert by_site["site1"].source_pct == pytest.approx(50.0)
            assert by_site["site1"].sink_loss == 0
            assert by_site["site1"].severity == "critical"
            assert by_site["site2"] == SlotCounts(60, 60, 60)
            table = pcs.loss.total(cluster)
            assert table == SlotCounts(120, 90, 90)
            assert table.total_pct == pytest.approx(25.0)
            assert table.source_pct == pytest.approx(25.0)
        other = [r for r in detector.results if r.window == window and r.table != "pcs"]
        assert all(r.loss.total(c).total_loss == 0 for r in other for c in ("local", "cloud"))

        assert detector.healer.history.requests == []
        assert workers[0].served == 0
        for dsn in (clusters.local, clusters.cloud):
            stored = await fetchval(
                dsn,
                "SELECT count(*) FROM pcs WHERE device_id = $1 AND ts >= $2 AND ts < $3",
                MUTED,
                t0,
                t0 + timedelta(seconds=60),
            )
            assert stored == 30

        # One JSON-ready log line per window, cluster and site, with the seed's fields.
        line = next(
            r
            for r in caplog.records
            if getattr(r, "table", None) == "pcs"
            and getattr(r, "site", None) == "site1"
            and getattr(r, "cluster", None) == "cloud"
            and getattr(r, "period_start", None) == window.start.isoformat()
        )
        assert line.levelname == "ERROR"  # critical
        fields = {
            k: getattr(line, k) for k in ("period", "loss_pct", "severity", "source_loss_pct")
        }
        assert fields == {
            "period": "minute",
            "loss_pct": 50.0,
            "severity": "critical",
            "source_loss_pct": 50.0,
        }
        assert line.__dict__["table_bytes"] > 0
        gauge = detector.metrics.loss.labels("local", "site1", "pcs", "minute", "source")
        assert gauge._value.get() == pytest.approx(0.5)

        # A day window is stored in loss_report on both clusters (figures of both).
        day = Window(window.start_s - window.start_s % 86400, "day")
        await detector.evaluate_one("pcs", day)
        for dsn in (clusters.local, clusters.cloud):
            stored_rows = await fetch(
                dsn,
                "SELECT cluster, expected, reached, present, severity FROM loss_report"
                " WHERE period = 'day' AND period_start = $1 AND table_name = 'pcs'"
                " AND site = 'site1' AND device_id = '*' ORDER BY cluster",
                day.start,
            )
            assert [tuple(r) for r in stored_rows] == [
                ("cloud", 86400, 30, 30, "critical"),
                ("local", 86400, 30, 30, "critical"),
            ]
