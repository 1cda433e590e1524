"""One cluster's database stopped for 30 s during ingest: the other sink keeps up,
the stopped one pauses, reports itself stalled, catches up after the restart, and
both clusters end identical. Then a stop while the database is down: the batch in
hand is abandoned uncommitted, and a new sink writes it later (nothing lost)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from ess_common.clusters import Cluster
from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.bootstrap import bootstrap
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.disposable import DisposablePostgres, disposable_postgres
from helpers.sink import counter_total, sink_settings
from helpers.sinkdata import (
    Message,
    fingerprints,
    messages,
    produce,
    recent_slot,
    row_count,
)

OUTAGE_S = 30.0
SLOTS = 400  # seed fleet: 67 readings a slot -> 26,800 readings
SLOT_EVERY_S = 0.12  # produced over ~48 s: before, during and after the outage
FAST_RETRY = {
    "sink_stall_s": 5.0,
    "sink_lag_interval_s": 0.5,
    "sink_retry_initial_s": 0.2,
    "sink_retry_max_s": 2.0,
    "sink_db_connect_timeout_s": 2.0,
    "sink_db_command_timeout_s": 10.0,
}


def test_one_cluster_down_for_30s_the_other_keeps_up_and_both_end_identical(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory, tmp_path: Path
) -> None:
    with disposable_postgres(tmp_path) as cloud_db:
        asyncio.run(_scenario(settings, topic_prefix, make_database, cloud_db))


class _Sinks:
    def __init__(self, settings: CommonSettings, prefix: str, dsns: dict[Cluster, str]) -> None:
        self.base, self.prefix, self.dsns = settings, prefix, dsns
        self.groups = {c: unique(f"g-{c}") for c in dsns}
        self.services: dict[Cluster, SinkService] = {}
        self.stops: dict[Cluster, asyncio.Event] = {}
        self.tasks: dict[Cluster, asyncio.Task[None]] = {}

    def start(self, cluster: Cluster) -> SinkService:
        config = sink_settings(
            self.base, cluster, self.dsns[cluster], self.prefix, self.groups[cluster], **FAST_RETRY
        )
        service = self.services[cluster] = bootstrap(config, CollectorRegistry())
        stop = self.stops[cluster] = asyncio.Event()
        self.tasks[cluster] = asyncio.create_task(service.run(stop))
        return service

    async def stop(self, cluster: Cluster, within_s: float = 10.0) -> float:
        started = time.monotonic()
        self.stops[cluster].set()
        await asyncio.wait_for(self.tasks[cluster], within_s)  # and re-raise a failure
        return time.monotonic() - started

    def check_alive(self) -> None:
        for cluster, task in self.tasks.items():
            if task.done():
                task.result()
                raise AssertionError(f"sink {cluster} stopped by itself")


def _paused_partitions(service: SinkService) -> float:
    return sum(s.value for m in service.metrics.paused_partitions.collect() for s in m.samples)


def _slots(batch: list[Message], per_slot: int) -> Iterator[list[Message]]:
    for i in range(0, len(batch), per_slot):
        yield batch[i : i + per_slot]


async def _scenario(
    settings: CommonSettings,
    prefix: str,
    make_database: DatabaseFactory,
    cloud_db: DisposablePostgres,
) -> None:
    dsns: dict[Cluster, str] = {"local": await make_database("local"), "cloud": cloud_db.dsn}
    fleet = seed_fleet()
    per_slot = len(fleet.devices())
    batch = messages(readings(fleet, recent_slot(2), SLOTS + 1), prefix)
    main, tail = batch[: SLOTS * per_slot], batch[SLOTS * per_slot :]
    async with pipeline_topics(settings.kafka_bootstrap, prefix):
        sinks = _Sinks(settings, prefix, dsns)
        local, cloud = sinks.start("local"), sinks.start("cloud")
        produced_at: list[tuple[float, int]] = [(time.monotonic(), 0)]
        try:
            async with ReadingProducer(settings.kafka_bootstrap, prefix) as producer:

                async def paced() -> None:
                    for slot in _slots(main, per_slot):
                        sent = produced_at[-1][1] + await produce(producer, slot)
                        produced_at.append((time.monotonic(), sent))
                        await asyncio.sleep(SLOT_EVERY_S)

                producing = asyncio.create_task(paced())
                await asyncio.sleep(5)
                await asyncio.to_thread(cloud_db.stop)
                outage_started = time.monotonic()
                cloud_seen_stalled = False
                while time.monotonic() - outage_started < OUTAGE_S:
                    await asyncio.sleep(1)
                    sinks.check_alive()
                    cloud_seen_stalled |= not cloud.health().ok
                    assert local.health().ok, local.health()
                    # The local cluster keeps up: everything produced 3 s ago is in.
                    due = max(n for t, n in produced_at if t <= time.monotonic() - 3)
                    assert await row_count(dsns["local"]) >= due, "local fell behind"
                assert cloud_seen_stalled, cloud.health()
                assert cloud.health().detail["database"] == "down"
                assert counter_total(cloud, "db_errors") > 0
                assert _paused_partitions(cloud) > 0
                await asyncio.to_thread(cloud_db.start)
                await producing

            total = len(main)
            deadline = time.monotonic() + 60
            while [await row_count(dsns[c]) for c in ("local", "cloud")] != [total, total]:
                sinks.check_alive()
                assert time.monotonic() < deadline, "the clusters did not converge in 60 s"
                await asyncio.sleep(0.5)
            assert _paused_partitions(cloud) == 0
            local_fp, cloud_fp = (
                await fingerprints(dsns["local"]),
                await fingerprints(dsns["cloud"]),
            )
            assert {t: (f.rows, f.digest) for t, f in local_fp.items()} == {
                t: (f.rows, f.digest) for t, f in cloud_fp.items()
            }
            await _stop_while_the_database_is_down(settings, sinks, cloud_db, tail, total)
        finally:
            for cluster, stop in sinks.stops.items():
                stop.set()
                if not sinks.tasks[cluster].done():
                    await asyncio.wait({sinks.tasks[cluster]}, timeout=30)


async def _committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


async def _stop_while_the_database_is_down(
    settings: CommonSettings,
    sinks: _Sinks,
    cloud_db: DisposablePostgres,
    tail: list[Message],
    written: int,
) -> None:
    cloud = sinks.services["cloud"]
    await asyncio.to_thread(cloud_db.stop)
    errors_before = counter_total(cloud, "db_errors")
    committed_before = await _committed(settings.kafka_bootstrap, sinks.groups["cloud"])
    async with ReadingProducer(settings.kafka_bootstrap, sinks.prefix) as producer:
        await produce(producer, tail)
    deadline = time.monotonic() + 20
    while not (_paused_partitions(cloud) and counter_total(cloud, "db_errors") > errors_before):
        assert time.monotonic() < deadline, "the cloud sink never met the stopped database"
        await asyncio.sleep(0.2)

    assert await sinks.stop("cloud") < 5.0  # abandons at once, well inside the drain bound
    assert await _committed(settings.kafka_bootstrap, sinks.groups["cloud"]) == committed_before

    await asyncio.to_thread(cloud_db.start)
    restarted = sinks.start("cloud")
    deadline = time.monotonic() + 60
    while await row_count(sinks.dsns["cloud"]) != written + len(tail):
        sinks.check_alive()
        assert time.monotonic() < deadline, "the abandoned batch was not written after restart"
        await asyncio.sleep(0.5)
    assert counter_total(restarted, "rows_written") == len(tail)
    for cluster in ("local", "cloud"):
        await sinks.stop(cluster)
