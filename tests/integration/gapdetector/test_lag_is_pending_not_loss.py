"""Sink lag is not sink loss (real Kafka, both clusters): a cloud sink held ten minutes
behind shows pending slots and its lag, 0 % sink loss and no replay request; once it
catches up the windows are final with 0 % loss. And a gap across more devices than
one request may carry is healed with several requests, none rejected."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from ess_common.model import TABLES
from ess_common.replay import MAX_DEVICES_PER_REQUEST
from ess_common.settings import CommonSettings
from ess_common.synthetic import Fleet, readings
from ess_common.topics import telemetry_topic
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory
from helpers.gap import (
    SMALL_FLEET,
    detector_settings,
    minute_ago,
    new_detector,
    pipeline,
    produce,
    replay_worker,
    run_until,
    sink_group,
    table_counts,
)
from helpers.sink import run_sink_until, sink_settings

MINUTES = 10


async def test_a_sink_ten_minutes_behind_is_pending_then_final_without_replays(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(MINUTES + 3)
    sent = list(readings(SMALL_FLEET, t0, seconds=MINUTES * 60))
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    windows = [Window(int(t0.timestamp()) + 60 * i, "minute") for i in range(MINUTES)]
    async with pipeline(settings, topic_prefix, make_database) as clusters:
        await produce(settings, topic_prefix, sent)

        async def local_done(_: SinkService) -> bool:
            return await table_counts(clusters.local) == expected

        await run_sink_until(  # the local sink keeps up; the cloud one has not started yet
            sink_settings(
                settings, "local", clusters.local, topic_prefix, sink_group(topic_prefix, "local"),
                sink_migrate_on_start=False,
            ),
            local_done,
        )  # fmt: skip
        lagging = {"gap_pending_recheck_s": 1.0, "gap_final_after_s": 3600.0}
        detector = new_detector(detector_settings(settings, topic_prefix, clusters, **lagging))

        def all_judged(d: GapDetectorService) -> bool:
            return all(any(r.window == w and r.table == "rack" for r in d.results) for w in windows)

        await run_until(detector, all_judged, timeout_s=120)
        for w in windows:
            r = next(x for x in detector.results if x.window == w and x.table == "rack")
            cloud = r.loss.total("cloud")
            assert not r.final
            assert cloud.pending == cloud.expected == 300  # 5 racks x 60 s
            assert (cloud.sink_loss, cloud.total_loss, cloud.severity) == (0, 0, "ok")
            assert r.sink_lag["cloud"] > 0
            assert r.loss.total("local").total_loss == 0
        assert detector.healer.history.requests == []  # lag is never replayed
        gauge = detector.metrics.loss.labels("cloud", "site1", "rack", "minute", "pending")
        assert gauge._value.get() == 1.0

        async def cloud_done(_: SinkService) -> bool:
            return await table_counts(clusters.cloud) == expected

        await run_sink_until(
            sink_settings(
                settings, "cloud", clusters.cloud, topic_prefix, sink_group(topic_prefix, "cloud"),
                sink_migrate_on_start=False,
            ),
            cloud_done,
        )  # fmt: skip
        finished = new_detector(detector_settings(settings, topic_prefix, clusters, **lagging))

        def all_final(d: GapDetectorService) -> bool:
            return all(
                any(r.window == w and r.table == "rack" and r.final for r in d.results)
                for w in windows
            )

        await run_until(finished, all_final, timeout_s=120)
        for w in windows:
            r = next(x for x in finished.results if x.window == w and x.final and x.table == "rack")
            assert r.loss.total("cloud").total_loss == 0
            assert r.loss.total("cloud").pending == 0
        assert finished.healer.history.requests == []


async def test_a_gap_across_more_devices_than_one_request_is_split_and_healed(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    fleet = Fleet({f"site{i}": {1: 100} for i in range(1, 52)})  # 5,100 racks
    t0 = minute_ago(8)
    window = Window(int(t0.timestamp()), "minute")
    sent = [r for r in readings(fleet, t0, seconds=1) if r.table == "rack"]
    async with pipeline(settings, topic_prefix, make_database, fleet=fleet) as clusters:
        await produce(settings, topic_prefix, sent)

        async def local_done(_: SinkService) -> bool:
            return (await table_counts(clusters.local))["rack"] == len(sent)

        await run_sink_until(
            sink_settings(
                settings, "local", clusters.local, topic_prefix, sink_group(topic_prefix, "local"),
                sink_migrate_on_start=False, sink_tables=("rack",),
            ),
            local_done,
        )  # fmt: skip
        # the cloud sink passed every message and wrote none of them (its rows were lost)
        await _commit_at_end(settings, topic_prefix, sink_group(topic_prefix, "cloud"))
        detector = new_detector(
            detector_settings(settings, topic_prefix, clusters, gap_tables=("rack",))
        )
        workers = [replay_worker(settings, "cloud", clusters, topic_prefix)]

        async def healed(_: GapDetectorService) -> bool:
            return (await table_counts(clusters.cloud))["rack"] == len(sent)

        await run_until(detector, healed, timeout_s=180, replay_workers=workers)
        sizes = sorted(len(r.devices or ()) for r in detector.healer.history.requests)
        assert sizes == [len(sent) - MAX_DEVICES_PER_REQUEST, MAX_DEVICES_PER_REQUEST]
        first = next(r for r in detector.results if r.window == window)
        assert first.loss.total("cloud").sink_loss == len(sent)
        assert workers[0].served == 2


async def _commit_at_end(settings: CommonSettings, prefix: str, group: str) -> None:
    """Commit `group`'s offsets at the rack topic's end, as a sink that passed it all."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(telemetry_topic("rack", prefix), p) for p in range(3)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items()})
    finally:
        await consumer.stop()
