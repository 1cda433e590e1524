"""The gap-detector service: the window loop and health, over adapters built in `bootstrap`.

Loop: read telemetry slots into the tracker; about once a second check the
Kafka lag, the replay statuses and the replay deadlines; evaluate the
windows that are due (oldest first), report them, heal what can be healed;
forget what is older than the rebuild horizon. Time comes from `clock`, so
the loop runs the same against fakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from aiokafka.errors import KafkaError

from ess_common.http import Health
from ess_common.model import TABLES, Table
from ess_gapdetector.evaluate import Evaluator, WindowResult
from ess_gapdetector.heal import Healer
from ess_gapdetector.kafka_feed import rebuild_start
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.ports import ClusterAccess, RequestSink, SlotSource, StatusSource
from ess_gapdetector.report import publish, store
from ess_gapdetector.settings import GapDetectorSettings
from ess_gapdetector.windows import Window, WindowScheduler
from ess_loss.slots import SlotTracker

log = logging.getLogger(__name__)

_HOUSEKEEPING_S = 1.0
_COMMIT_EVERY_S = 10.0
_POLL_MS = 200


class GapDetectorService:
    name = "gapdetector"

    def __init__(
        self,
        settings: GapDetectorSettings,
        *,
        metrics: GapMetrics,
        tracker: SlotTracker,
        feed: SlotSource,
        statuses: StatusSource,
        requests: RequestSink,
        clusters: ClusterAccess,
        healer: Healer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracker = tracker
        self.feed = feed
        self.statuses = statuses
        self.requests = requests
        self.clusters = clusters
        self.healer = healer
        self.clock = clock
        self.evaluator = Evaluator(clusters, tracker, settings.gap_device_silent_s)
        self.scheduler: WindowScheduler | None = None
        self.results: deque[WindowResult] = deque(maxlen=2000)
        self._last_housekeeping = 0.0
        self._last_commit = 0.0

    def health(self) -> Health:
        up = self.clusters.up()
        return Health(
            ok=bool(up),
            detail={
                "kafka_lag": self.feed.lag,
                "clusters_up": up,
                "pending_replays": len(self.healer.pending),
                "windows_evaluated": len(self.results),
                "tracked_blocks": self.tracker.block_count,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.start()
            while not stop.is_set():
                await self.step()
        finally:
            await self.close()

    async def start(self) -> None:
        s = self.settings
        await self.clusters.prepare()
        self.scheduler = WindowScheduler(
            s.gap_periods, s.gap_tables, s.gap_settle_s, self.clock(), s.gap_lookback_s
        )
        await self.statuses.start()
        await self.feed.start(rebuild_start(s.rebuild_horizon_s))
        await self.requests.start()

    async def step(self) -> None:
        """One turn of the loop: a poll of the telemetry, housekeeping when it is time."""
        await self.feed.poll(timeout_ms=_POLL_MS)
        await self._housekeeping()

    async def close(self) -> None:
        await self.feed.stop()
        await self.statuses.stop()
        await self.requests.stop()
        await self.clusters.close()

    async def _housekeeping(self) -> None:
        now = self.clock()
        if now - self._last_housekeeping < _HOUSEKEEPING_S:
            return
        self._last_housekeeping = now
        await self.feed.check_caught_up()
        for status in await self.statuses.statuses():
            await self.healer.on_status(status)
        await self.healer.check_timeouts()
        self._evaluate_healed_again()
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
        self.scheduler.mark_evaluated(table, window, self.clock())
        if result is None:
            log.warning("window %s of %s not evaluated: no cluster reachable", window, table)
            return None
        publish(result, self.metrics)
        if window.period == "day" and self.settings.gap_store_daily:
            await store(result, self.clusters)
        self.metrics.evaluation_seconds.labels(window.period).observe(time.perf_counter() - started)
        if self.settings.gap_heal:
            await self.healer.heal(result)
            self._evaluate_healed_again()
        self.results.append(result)
        return result

    def _evaluate_healed_again(self) -> None:
        assert self.scheduler is not None
        for table, window in self.healer.take_healed():
            self.scheduler.invalidate(table, window)


def _table(name: str) -> Table:
    for table in TABLES:
        if name == table:
            return table
    raise ValueError(f"unknown table {name!r}")
