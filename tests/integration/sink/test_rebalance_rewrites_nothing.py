"""A second sink member joins and leaves each cluster's group every 15 s while
200,000 readings arrive: both clusters end with every reading exactly once, and a
rebalance re-writes (almost) nothing, because the member that loses partitions
finishes and commits the batch in flight before giving them up.

Rows written twice are the sinks' own count of rows already present
(`ess_sink_duplicates_skipped_total`): every reading is produced once, so each is
a row that some member wrote again after a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry

from ess_common.clusters import Cluster
from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, scaled_fleet
from ess_sink.bootstrap import bootstrap
from ess_sink.service import SinkService
from ess_sink.settings import SinkSettings
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import counter_total, sink_settings
from helpers.sinkdata import (
    assert_both_hold_each_reading_once,
    messages,
    produce_paced,
    recent_slot,
    row_count,
)

log = logging.getLogger(__name__)

READINGS = 200_000
FLEET = scaled_fleet(1000)
SLOTS = -(-READINGS // len(FLEET.devices()))
PRODUCE_OVER_S = 60.0
TOGGLE_S = 15.0  # the second member joins, 15 s later leaves, 15 s later joins, ...
MAX_TWICE_PER_REBALANCE = 100  # before: hundreds to thousands (the batches in flight)


class _Member:
    """One in-process sink member; `runs` keeps every incarnation for the counts."""

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.runs: list[SinkService] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        service = bootstrap(self.settings, CollectorRegistry())
        self.runs.append(service)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(service.run(self._stop))

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 60)
            self._task = None

    def check(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()
            raise AssertionError("a sink member stopped by itself")

    def total(self, counter: str) -> float:
        return sum(counter_total(s, counter) for s in self.runs)


async def test_members_joining_and_leaving_write_every_reading_once(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    batch = messages(readings(FLEET, recent_slot(2), SLOTS), topic_prefix)
    produced = len(batch)
    assert produced >= READINGS
    clusters: tuple[Cluster, ...] = ("local", "cloud")
    dsns = {c: await make_database(c) for c in clusters}
    members: dict[Cluster, tuple[_Member, _Member]] = {}
    for c in clusters:
        group = unique(f"g-{c}")
        s = sink_settings(settings, c, dsns[c], topic_prefix, group, sink_session_timeout_s=6)
        members[c] = (_Member(s), _Member(s))
    rebalances = 0
    started = time.monotonic()
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix, partitions=6):
        try:
            for first, _ in members.values():
                first.start()
            async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
                producing = asyncio.create_task(
                    produce_paced(producer, batch, SLOTS, PRODUCE_OVER_S)
                )
                joined = False
                while not producing.done():
                    await asyncio.wait({producing}, timeout=TOGGLE_S)
                    for first, second in members.values():
                        first.check()
                        second.check()
                    if producing.done() and not joined:
                        break
                    for _, second in members.values():
                        if joined:
                            await second.stop()
                        else:
                            second.start()
                    joined = not joined
                    rebalances += 1
                assert await producing == produced
            deadline = time.monotonic() + 120
            while [await row_count(dsns[c]) for c in clusters] != [produced, produced]:
                assert time.monotonic() < deadline, "the sinks did not catch up within 120 s"
                for first, second in members.values():
                    first.check()
                    second.check()
                await asyncio.sleep(0.5)
        finally:
            for pair in members.values():
                for member in pair:
                    await member.stop()
    assert rebalances >= 3

    await assert_both_hold_each_reading_once(dsns, produced)
    twice = {c: int(sum(m.total("duplicates") for m in members[c])) for c in clusters}
    written = {c: int(sum(m.total("rows_written") for m in members[c])) for c in clusters}
    assert written == {c: produced for c in clusters}
    per_rebalance = {c: twice[c] / rebalances for c in clusters}
    log.warning(
        "%d readings, %d rebalances per group, %.0fs: rows written twice %s, per rebalance %s",
        produced,
        rebalances,
        time.monotonic() - started,
        twice,
        per_rebalance,
    )
    assert all(n <= MAX_TWICE_PER_REBALANCE for n in per_rebalance.values()), per_rebalance
