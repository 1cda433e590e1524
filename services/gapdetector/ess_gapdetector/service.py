"""The gap-detector service: wires the feeds, the evaluator, the reports and the healer.

Loop: read telemetry slots into the tracker; about once a second check the
Kafka lag, the replay statuses and the replay deadlines; evaluate the
windows that are due (oldest first), report them, heal what can be healed;
forget what is older than the rebuild horizon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from ess_common.db import DbTimeouts
from ess_common.http import Health
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import assign_topics, kafka_covers, offset_reader
from ess_common.model import Table
from ess_common.replay import ReplayRequest, encode_control
from ess_common.topics import replay_topic, telemetry_topic
from ess_gapdetector.evaluate import Evaluator, WindowResult
from ess_gapdetector.heal import Healer
from ess_gapdetector.kafka_feed import ControlFeed, SlotFeed, rebuild_start
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.report import ensure_loss_report, publish, store
from ess_gapdetector.settings import GapDetectorSettings
from ess_gapdetector.windows import Window, WindowScheduler
from ess_loss.slots import SlotTracker
from ess_tables.links import ClusterLink

log = logging.getLogger(__name__)

_HOUSEKEEPING_S = 1.0
_COMMIT_EVERY_S = 10.0


class GapDetectorService:
    name = "gapdetector"

    def __init__(self, settings: GapDetectorSettings, registry: CollectorRegistry) -> None:
        self.settings = s = settings
        self.metrics = GapMetrics(registry)
        self.tracker = SlotTracker(s.largest_period_s, s.smallest_period_s)
        timeouts = DbTimeouts(command_s=s.gap_db_command_timeout_s)
        self.links: dict[str, ClusterLink] = {
            c: ClusterLink(c, s.dsn(c), timeouts, "gapdetector") for c in s.gap_clusters
        }
        self.feed = SlotFeed(
            s.kafka_bootstrap,
            s.topic_prefix,
            s.gap_group_id,
            tables=s.gap_tables,
            tracker=self.tracker,
            metrics=self.metrics,
            poll_records=s.gap_poll_records,
        )
        self.control = ControlFeed(s.kafka_bootstrap, s.topic_prefix)
        self.producer = ReadingProducer(s.kafka_bootstrap, s.topic_prefix)
        self.evaluator = Evaluator(self.links, self.tracker, self.metrics, s.gap_device_silent_s)
        self.scheduler: WindowScheduler | None = None
        self.healer = Healer(
            self.links,
            self.metrics,
            self._publish,
            self._kafka_covers,
            self._healed,
            coalesce_s=s.gap_coalesce_s,
            replay_timeout_s=s.gap_replay_timeout_s,
            sync_chunk_rows=s.gap_sync_chunk_rows,
        )
        self.results: deque[WindowResult] = deque(maxlen=2000)
        self._last_housekeeping = 0.0
        self._last_commit = 0.0

    def health(self) -> Health:
        return Health(
            ok=any(link.up for link in self.links.values()),
            detail={
                "kafka_lag": self.feed.lag,
                "clusters_up": [c for c, link in self.links.items() if link.up],
                "pending_replays": len(self.healer.pending),
                "windows_evaluated": len(self.results),
                "tracked_blocks": self.tracker.block_count,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        for link in self.links.values():
            conn = await link.get()
            if conn is not None:
                await ensure_loss_report(conn)
        self.scheduler = WindowScheduler(
            s.gap_periods, s.gap_tables, s.gap_settle_s, time.time(), s.gap_lookback_s
        )
        await self.control.start()
        try:
            await self.feed.start(rebuild_start(s.rebuild_horizon_s))
            async with self.producer:
                while not stop.is_set():
                    await self.feed.poll(timeout_ms=200)
                    await self._housekeeping()
        finally:
            await self.feed.stop()
            await self.control.stop()
            for link in self.links.values():
                await link.close()

    async def _housekeeping(self) -> None:
        now = time.time()
        if now - self._last_housekeeping < _HOUSEKEEPING_S:
            return
        self._last_housekeeping = now
        await self.feed.check_caught_up()
        for status in await self.control.statuses():
            await self.healer.on_status(status)
        await self.healer.check_timeouts()
        await self.evaluate_due(now)
        if now - self._last_commit >= _COMMIT_EVERY_S:
            self._last_commit = now
            try:
                await self.feed.commit()
            except KafkaError as exc:
                log.warning("could not commit the detector's positions: %s", exc)
        cutoff = now - self.settings.rebuild_horizon_s
        self.tracker.drop_blocks_before(int(cutoff))
        assert self.scheduler is not None
        self.scheduler.forget_before(cutoff)

    async def evaluate_due(self, now: float) -> None:
        assert self.scheduler is not None
        touched = self.tracker.touched_slices(self.settings.gap_tables)
        for table, window in self.scheduler.due(touched, now, self.feed.caught_up_at):
            await self.evaluate_one(_table(table), window)

    async def evaluate_one(self, table: Table, window: Window) -> WindowResult | None:
        assert self.scheduler is not None
        started = time.perf_counter()
        result = await self.evaluator.evaluate(table, window)
        self.scheduler.mark_evaluated(table, window, time.time())
        if result is None:
            log.warning("window %s of %s not evaluated: no cluster reachable", window, table)
            return None
        publish(result, self.metrics)
        if window.period == "day" and self.settings.gap_store_daily:
            await store(result, self.links, self.metrics)
        self.metrics.evaluation_seconds.labels(window.period).observe(time.perf_counter() - started)
        if self.settings.gap_heal:
            await self.healer.heal(result)
        self.results.append(result)
        return result

    async def _publish(self, request: ReplayRequest) -> None:
        ack = await self.producer.send_raw(
            replay_topic(self.settings.topic_prefix),
            encode_control(request),
            request.cluster.encode(),
        )
        await ack

    async def _kafka_covers(self, table: Table, since: datetime) -> bool:
        reader = offset_reader(self.settings.kafka_bootstrap, client_id="gapdetector-coverage")
        await reader.start()
        try:
            topic = telemetry_topic(table, self.settings.topic_prefix)
            partitions = await assign_topics(reader, [topic])
            return await kafka_covers(reader, partitions, since)
        finally:
            await reader.stop()

    def _healed(self, table: Table, window: Window) -> None:
        if self.scheduler is not None:
            self.scheduler.invalidate(table, window)


def _table(name: str) -> Table:
    for table in ("bank", "rack", "pcs", "etc"):
        if name == table:
            return table
    raise ValueError(f"unknown table {name!r}")
