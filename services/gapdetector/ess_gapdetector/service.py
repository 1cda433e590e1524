"""The gap-detector service: the window loop and health, over adapters built in `bootstrap`.

Loop: read telemetry slots into the tracker; about once a second check how
far the feed is (positions against end offsets), the replay statuses and
deadlines, refresh the fleet registry; evaluate the windows that are due
(oldest first), report them, heal what can be healed; save what it learned
into the clusters; forget what is older than the horizon. Time comes from
`clock`, so the loop runs the same against fakes.

It never falls over on a dependency: every Kafka call (start, poll, end
offsets, the sink groups' commits, publishing, statuses, coverage) and every
database call is retried with the shared backoff (`Waits`) while the loop
keeps running, and `/healthz` names what it waits for. It is unhealthy only
when no window has been evaluated for `health_stale_s`.

A window whose slots some cluster's sink group has not consumed yet is
evaluated as "pending" (that lag is reported, never counted as loss or
replayed) and evaluated again every `gap_pending_recheck_s` until every
group passed it, or until `gap_final_after_s` after its end: then it is
final and what is still missing is sink loss, healed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from aiokafka.errors import KafkaError

from ess_common.backoff import Backoff
from ess_common.http import Health
from ess_common.model import TABLES, Table
from ess_gapdetector.evaluate import Evaluator, WindowResult
from ess_gapdetector.heal import Healer
from ess_gapdetector.kafka_feed import rebuild_start
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.ports import ClusterAccess, RequestSink, SinkGroups, SlotSource, StatusSource
from ess_gapdetector.report import publish, store
from ess_gapdetector.settings import GapDetectorSettings
from ess_gapdetector.snapshot import StateKeeper
from ess_gapdetector.windows import Window, WindowScheduler
from ess_loss.service_time import FleetRegistry
from ess_loss.slots import SlotTracker
from ess_loss.window import Committed

log = logging.getLogger(__name__)

_HOUSEKEEPING_S = 1.0
_COMMIT_EVERY_S = 10.0
_POLL_MS = 200
_KAFKA_CALL_S = 15.0  # one Kafka round trip; longer means the broker is away
_CLOSE_S = 10.0
# what a Kafka client raises when the broker is away (aiokafka's tree, sockets, timeouts)
KAFKA_FAILURES = (KafkaError, OSError, TimeoutError)


class Waits:
    """What the service is waiting for, each with its own shared backoff."""

    def __init__(self, metrics: GapMetrics, initial_s: float, cap_s: float) -> None:
        self._metrics = metrics
        self._initial_s = initial_s
        self._cap_s = cap_s
        self._backoff: dict[str, Backoff] = {}
        self._next: dict[str, float] = {}
        self.reasons: dict[str, str] = {}

    def ready(self, what: str, now: float) -> bool:
        return now >= self._next.get(what, 0.0)

    def failed(self, what: str, doing: str, exc: BaseException, now: float) -> None:
        backoff = self._backoff.setdefault(what, Backoff(self._initial_s, self._cap_s))
        delay = backoff.next_delay()
        self._next[what] = now + delay
        reason = f"{doing}: {type(exc).__name__}: {exc}"[:300]
        if what not in self.reasons:
            log.warning("waiting for %s (%s); retrying with backoff", what, reason)
        self.reasons[what] = reason
        self._metrics.waiting.labels(what).set(1)

    def ok(self, what: str) -> None:
        if self.reasons.pop(what, None) is not None:
            log.info("%s is back", what)
            self._metrics.waiting.labels(what).set(0)
        backoff = self._backoff.get(what)
        if backoff is not None:
            backoff.reset()
        self._next.pop(what, None)


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
        sink_groups: SinkGroups | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        s = settings
        self.settings = settings
        self.metrics = metrics
        self.tracker = tracker
        self.feed = feed
        self.statuses = statuses
        self.requests = requests
        self.clusters = clusters
        self.healer = healer
        self.sink_groups = sink_groups
        self.clock = clock
        self.evaluator = Evaluator(clusters, tracker)
        self.scheduler: WindowScheduler | None = None
        self.results: deque[WindowResult] = deque(maxlen=2000)
        self.registry: FleetRegistry | None = None
        self.waits = Waits(metrics, s.gap_retry_initial_s, s.gap_retry_max_s)
        self.state = StateKeeper(s, clusters, tracker)
        self.pending_windows: dict[tuple[Table, Window], float] = {}  # -> next check
        self.started = False
        self.started_at = clock()
        self.last_evaluated_at: float | None = None
        self._last_housekeeping = 0.0
        self._last_commit = 0.0
        self._last_registry = float("-inf")
        self._kafka_up: set[str] = set()

    # -- health -----------------------------------------------------------------------------

    def health(self) -> Health:
        now = self.clock()
        since = now - (self.last_evaluated_at or self.started_at)
        self.metrics.seconds_since_window.set(since)
        return Health(
            ok=since <= self.settings.health_stale_s,
            detail={
                "seconds_since_window": round(since, 1),
                "windows_evaluated": len(self.results),
                "waiting_for": dict(self.waits.reasons),
                "kafka_lag": self.feed.lag,
                "clusters_up": self.clusters.up(),
                "pending_windows": len(self.pending_windows),
                "pending_replays": len(self.healer.pending),
                "registered_devices": None if self.registry is None else len(self.registry.devices),
                "tracked_blocks": self.tracker.block_count,
            },
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.step()
                if not self.started:
                    await asyncio.sleep(0.2)
        finally:
            await self.close()

    async def start(self) -> None:
        """Prepare and start what can be started now; the rest is retried by `step`."""
        s = self.settings
        if self.scheduler is None:
            await self.clusters.prepare()
            self.scheduler = WindowScheduler(
                s.gap_periods, s.gap_tables, s.gap_settle_s, self.clock(), s.gap_lookback_s
            )
        await self._start_kafka()

    async def _start_kafka(self) -> None:
        now = self.clock()
        if not self.waits.ready("kafka", now):
            return
        s = self.settings
        try:
            if "feed" not in self._kafka_up:
                positions = await self.state.restore() if s.gap_resume_from_state else None
                await self.feed.start(rebuild_start(s.rebuild_horizon_s), positions)
                self._kafka_up.add("feed")
            if "statuses" not in self._kafka_up:
                await self.statuses.start()
                self._kafka_up.add("statuses")
            if "requests" not in self._kafka_up:
                await self.requests.start()
                self._kafka_up.add("requests")
        except KAFKA_FAILURES as exc:
            self.waits.failed("kafka", "starting the Kafka clients", exc, now)
            return
        self.waits.ok("kafka")
        self.started = True

    async def step(self) -> None:
        """One turn of the loop: a poll of the telemetry, housekeeping when it is time."""
        if not self.started:
            await self.start()
            if not self.started:
                return
        try:
            await self.feed.poll(timeout_ms=_POLL_MS)
        except KAFKA_FAILURES as exc:
            self.waits.failed("kafka", "polling the telemetry", exc, self.clock())
            await asyncio.sleep(_POLL_MS / 1000)
        await self._housekeeping()

    async def close(self) -> None:
        """Close every client, each within a bound (the broker may be away)."""
        closing: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("feed", self.feed.stop),
            ("statuses", self.statuses.stop),
            ("requests", self.requests.stop),
        ]
        if self.sink_groups is not None:
            closing.append(("sink groups", self.sink_groups.close))
        for name, stop in closing:
            try:
                await asyncio.wait_for(stop(), _CLOSE_S)
            except KAFKA_FAILURES as exc:
                log.warning("stopping the %s client: %s", name, exc)
        await self.clusters.close()

    async def _kafka(
        self,
        doing: str,
        call: Callable[[], Awaitable[object]],
        *,
        round_trip: bool = False,
        bound_s: float | None = _KAFKA_CALL_S,
    ) -> bool:
        """Run one Kafka call (bounded) unless Kafka is in backoff; False when it failed or
        waited. Only a call that needs the broker (`round_trip`) proves it is back."""
        now = self.clock()
        if not self.waits.ready("kafka", now):
            return False
        try:
            await asyncio.wait_for(call(), bound_s)
        except KAFKA_FAILURES as exc:
            self.waits.failed("kafka", doing, exc, now)
            return False
        if round_trip:
            self.waits.ok("kafka")
        return True

    async def _housekeeping(self) -> None:
        now = self.clock()
        if now - self._last_housekeeping < _HOUSEKEEPING_S:
            return
        self._last_housekeeping = now
        await self._refresh_registry(now)
        caught_up = await self._kafka(
            "checking the end offsets", self.feed.check_caught_up, round_trip=True
        )

        async def statuses() -> None:
            for status in await self.statuses.statuses():
                await self.healer.on_status(status)

        await self._kafka("reading replay statuses", statuses)
        await self._kafka("checking replay deadlines", self.healer.check_timeouts)
        self._evaluate_healed_again()
        if caught_up:
            await self.evaluate_due(now)
        if now - self._last_commit >= _COMMIT_EVERY_S:
            self._last_commit = now
            await self._kafka("committing the detector's positions", self.feed.commit)
        await self._save_state(now)
        cutoff = now - self.settings.rebuild_horizon_s
        self.tracker.drop_blocks_before(int(cutoff))
        assert self.scheduler is not None
        self.scheduler.forget_before(cutoff)
        for key in [k for k in self.pending_windows if k[1].end_s < cutoff]:
            del self.pending_windows[key]
        self.metrics.pending_windows.set(len(self.pending_windows))

    async def _save_state(self, now: float) -> None:
        if not self.state.due(now):
            return

        async def positions() -> None:
            self.state.positions = await self.feed.positions()

        if await self._kafka("reading the feed's positions", positions):
            await self.state.save(now)

    async def _refresh_registry(self, now: float) -> None:
        if now - self._last_registry < self.settings.gap_registry_refresh_s:
            return
        self._last_registry = now
        found = await self.clusters.registry()
        if found is None:
            self.waits.failed(
                "registry", "reading the fleet registry", LookupError("no cluster answered"), now
            )
            return
        self.waits.ok("registry")
        self.registry = found
        assert self.scheduler is not None
        self.scheduler.set_zones({found.zone_of(site) for site in found.sites()})

    async def evaluate_due(self, now: float) -> None:
        assert self.scheduler is not None
        if self.registry is None:
            return
        touched = self.tracker.touched_slices(self.settings.gap_tables)
        due = self.scheduler.due(touched, now, self.feed.caught_up_at)
        due += [k for k, at in sorted(self.pending_windows.items()) if at <= now and k not in due]
        committed: dict[Table, Committed] = {}
        for table, window in due:
            t = _table(table)
            if t not in committed:
                progress = await self._sink_progress(t)
                if progress is None:
                    return  # Kafka is away: try again after the backoff
                committed[t] = progress
            await self.evaluate_one(t, window, committed[t])

    async def _sink_progress(self, table: Table) -> Committed | None:
        if self.sink_groups is None:
            return {}
        found: dict[str, Mapping[int, int] | None] = {}

        async def ask() -> None:
            assert self.sink_groups is not None
            for cluster, offsets in (await self.sink_groups.committed(table)).items():
                found[cluster] = offsets

        if not await self._kafka("reading the sink groups' offsets", ask, round_trip=True):
            return None
        return found

    async def evaluate_one(
        self, table: Table, window: Window, committed: Committed | None = None
    ) -> WindowResult | None:
        """Evaluate, report, heal; `committed=None`: judge the window as final."""
        assert self.scheduler is not None
        if self.registry is None:
            await self._refresh_registry(float("inf"))
            if self.registry is None:
                return None
        started = time.perf_counter()
        final_at = window.end_s + self.settings.gap_final_after_s
        judged: Committed | None = None if self.clock() >= final_at else committed
        result = await self.evaluator.evaluate(
            table, window, self.registry, committed=judged, sites=self._sites_of(window)
        )
        self.scheduler.mark_evaluated(table, window, self.clock())
        if result is None:
            log.warning("window %s of %s not evaluated: no cluster reachable", window, table)
            return None
        self.last_evaluated_at = self.clock()
        if result.final:
            self.pending_windows.pop((table, window), None)
        else:
            self.pending_windows[(table, window)] = (
                self.clock() + self.settings.gap_pending_recheck_s
            )
        publish(result, self.metrics)
        if window.period == "day" and self.settings.gap_store_daily:
            await store(result, self.clusters)
        self.metrics.evaluation_seconds.labels(window.period).observe(time.perf_counter() - started)
        if self.settings.gap_heal:
            healed = await self._kafka(  # unbounded: it may copy rows between the clusters
                "healing", lambda: self.healer.heal(result), round_trip=True, bound_s=None
            )
            if not healed:
                self.scheduler.invalidate(table, window)  # heal again once Kafka is back
            self._evaluate_healed_again()
        self.results.append(result)
        return result

    def _sites_of(self, window: Window) -> set[str] | None:
        """Day windows cover the sites of their zone; minutes and hours every site."""
        if window.period != "day" or self.registry is None:
            return None
        zone_of = self.registry.zone_of
        return {site for site in self.registry.sites() if zone_of(site) == window.zone}

    def _evaluate_healed_again(self) -> None:
        assert self.scheduler is not None
        for table, window in self.healer.take_healed():
            self.scheduler.invalidate(table, window)


def _table(name: str) -> Table:
    for table in TABLES:
        if name == table:
            return table
    raise ValueError(f"unknown table {name!r}")
