"""Rows deleted from one cluster: the detector reports exactly those slots as sink
loss, asks that cluster's sink for a replay, the rows come back once, and the
other cluster is left alone."""

from __future__ import annotations

from datetime import timedelta

from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings
from ess_gapdetector.evaluate import WindowResult
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from ess_loss.lossmath import SlotCounts, runs_of_set_bits
from helpers.common import DatabaseFactory
from helpers.gap import (
    SMALL_FLEET,
    detector_settings,
    execute,
    fetchval,
    fill_both_clusters,
    fingerprint,
    minute_ago,
    new_detector,
    pipeline,
    produce,
    replay_worker,
    run_until,
    table_counts,
)

RACKS = ("site1/bank1/rack2", "site1/bank1/rack3")
SILENT = "site2/bank1/rack1"


def _results(detector: GapDetectorService, table: str, window: Window) -> list[WindowResult]:
    return [r for r in detector.results if r.table == table and r.window == window]


async def test_deleted_rows_are_reported_as_sink_loss_and_replayed_back(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(20)
    w_rack = Window(int(t0.timestamp()), "minute")
    w_bank = Window(w_rack.end_s, "minute")
    # site2/bank1/rack1 is silent for 10 s of the first minute: source loss stays.
    sent = [
        r
        for r in readings(SMALL_FLEET, t0, seconds=120)
        if not (r.device.key == SILENT and 5 <= (r.ts - t0).total_seconds() < 15)
    ]
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database) as clusters:
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected)
        # 30 s of two racks in the first minute, 5 s of site2's bank in the second.
        gone_rack = await execute(
            clusters.local,
            "DELETE FROM rack WHERE device_id = ANY($1) AND ts >= $2 AND ts < $3",
            list(RACKS),
            t0 + timedelta(seconds=20),
            t0 + timedelta(seconds=50),
        )
        gone_bank = await execute(
            clusters.local,
            "DELETE FROM bank WHERE device_id = 'site2/bank1' AND ts >= $1 AND ts < $2",
            t0 + timedelta(seconds=70),
            t0 + timedelta(seconds=75),
        )
        assert (gone_rack, gone_bank) == ("DELETE 60", "DELETE 5")
        cloud_before = await fingerprint(clusters.cloud)

        detector = new_detector(detector_settings(settings, topic_prefix, clusters))
        workers = [replay_worker(settings, c, clusters, topic_prefix) for c in ("local", "cloud")]

        def healed_and_reevaluated(d: GapDetectorService) -> bool:
            closed = {(c, t) for c, t, _, _ in d.healer.history.closed}
            again = [_results(d, "rack", w_rack), _results(d, "bank", w_bank)]
            return closed >= {("local", "rack"), ("local", "bank")} and all(
                len(r) >= 2 for r in again
            )

        await run_until(detector, healed_and_reevaluated, replay_workers=workers)

        # First evaluation: exactly the deleted slots, as sink loss of local only.
        first = _results(detector, "rack", w_rack)[0]
        # 5 racks x 60 slots; 10 never sent; 2 x 30 deleted from local.
        assert first.loss.total("local") == SlotCounts(300, 290, 230)
        assert first.loss.total("cloud") == SlotCounts(300, 290, 290)
        missing = {
            d.device: runs_of_set_bits(d.sink_missing["local"])
            for d in first.loss.devices
            if d.sink_missing["local"]
        }
        assert missing == {device: [(20, 50)] for device in RACKS}
        assert first.loss.by_site("local")["site1"].sink_loss == 60
        assert first.loss.by_site("local")["site2"].sink_loss == 0
        bank_first = _results(detector, "bank", w_bank)[0]
        assert bank_first.loss.by_site("local")["site2"] == SlotCounts(60, 60, 55)

        # One replay request per gap, for local only, naming the devices and slots.
        requests = detector.healer.history.requests
        assert {(r.cluster, r.table) for r in requests} == {("local", "rack"), ("local", "bank")}
        rack_req = next(r for r in requests if r.table == "rack")
        assert rack_req.slots is not None
        assert rack_req.slots.start == t0 + timedelta(seconds=20)
        assert rack_req.slots.end == t0 + timedelta(seconds=50)
        assert rack_req.devices == RACKS
        assert workers[0].served == 2
        assert workers[1].served == 0  # the cloud sink ignored local's requests
        assert detector.healer.history.unclosed == []

        # The rows are back, once each; loss is back to the source level (none here).
        assert await table_counts(clusters.local) == expected
        assert await table_counts(clusters.cloud) == expected
        distinct = await fetchval(
            clusters.local, "SELECT count(DISTINCT (device_id, ts)) FROM rack"
        )
        assert distinct == expected["rack"]
        last = _results(detector, "rack", w_rack)[-1]
        for cluster in ("local", "cloud"):
            total = last.loss.total(cluster)
            assert total.sink_loss == 0
            assert total.total_loss == total.source_loss == 10
        assert await fingerprint(clusters.cloud) == cloud_before
