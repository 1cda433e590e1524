"""The detector's window loop against in-memory fakes of its adapters (no I/O).

The fakes keep the truth the real servers would: which slots Kafka brought
(fed into the tracker by `FakeFeed`), which rows each cluster holds
(`FakeClusters`), what the sinks answer (`FakeSinks`). The clock is the
test's, so "due after settling and catching up" is checked to the second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_common.replay import ReplayRequest, ReplayStatus
from ess_gapdetector.heal import Healer
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.settings import GapDetectorSettings
from ess_gapdetector.state import DetectorState
from ess_gapdetector.windows import Window
from ess_loss.lossmath import SlotCounts
from ess_loss.service_time import FleetRegistry, RegisteredDevice
from ess_loss.slots import SlotTracker
from ess_tables.crosssync import SlotGap, SyncTotals

E0 = int(datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp())
W = Window(E0, "minute")  # the window every test looks at: [E0, E0 + 60)
RACK1 = "site1/bank1/rack1"
RACK2 = "site1/bank1/rack2"
SETTLE_S = 5.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeFeed:
    """Kafka's telemetry: `send` queues slots, the next poll puts them into the tracker."""

    def __init__(self, tracker: SlotTracker, clock: Clock) -> None:
        self.tracker = tracker
        self.clock = clock
        self.queued: list[tuple[Table, str, int]] = []
        self.behind = 0  # messages Kafka has that the detector has not read
        self.caught_up_at = 0.0
        self.lag = -1
        self.started: datetime | None = None
        self.stopped = False
        self.commits = 0
        self.polls = 0

    def send(self, table: Table, device: str, seconds: Iterable[int]) -> None:
        self.queued += [(table, device, E0 + s) for s in seconds]

    async def start(
        self, rebuild_from: datetime, positions: Mapping[str, int] | None = None
    ) -> None:
        self.started = rebuild_from

    async def positions(self) -> dict[str, int]:
        return {}

    async def stop(self) -> None:
        self.stopped = True

    async def poll(self, timeout_ms: int) -> int:
        self.polls += 1
        for table, device, slot in self.queued:
            self.tracker.add(table, device, slot, self.clock())
        read, self.queued = len(self.queued), []
        return read

    async def check_caught_up(self) -> int:
        self.lag = self.behind
        if self.behind == 0:
            self.caught_up_at = self.clock()
        return self.lag

    async def commit(self) -> None:
        self.commits += 1


class FakeClusters:
    """Rows per cluster as sets of epoch seconds; a cluster in `down` answers None."""

    names: tuple[Cluster, ...] = ("local", "cloud")

    def __init__(self) -> None:
        # the fleet registry: both racks of site1 in service since an hour before `W`
        self.fleet = FleetRegistry.of(
            RegisteredDevice(d, "site1", "rack", E0 - 3600) for d in (RACK1, RACK2)
        )
        self.rows: dict[tuple[Cluster, Table, str], set[int]] = {}
        self.down: set[Cluster] = set()
        self.prepared = False
        self.closed = False
        self.reports: list[tuple[Any, ...]] = []
        self.copies: list[tuple[Cluster, Cluster, list[SlotGap]]] = []

    def hold(self, cluster: Cluster, table: Table, device: str, seconds: Iterable[int]) -> None:
        self.rows.setdefault((cluster, table, device), set()).update(E0 + s for s in seconds)

    def up(self) -> list[Cluster]:
        return [c for c in self.names if c not in self.down]

    async def prepare(self) -> None:
        self.prepared = True

    async def presence(
        self,
        cluster: Cluster,
        table: Table,
        start: datetime,
        end: datetime,
        devices: Collection[str] | None = None,
    ) -> dict[str, int] | None:
        if cluster in self.down:
            return None
        a, b = int(start.timestamp()), int(end.timestamp())
        found: dict[str, int] = {}
        for (c, t, device), slots in self.rows.items():
            if c == cluster and t == table and (devices is None or device in devices):
                bits = sum(1 << (s - a) for s in slots if a <= s < b)
                if bits:
                    found[device] = bits
        return found

    async def table_bytes(self, cluster: Cluster, table: Table) -> int | None:
        return None if cluster in self.down else 8192

    async def store_report(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.reports.extend(rows)

    async def copy(
        self, source: Cluster, target: Cluster, table: Table, gaps: list[SlotGap], chunk_rows: int
    ) -> SyncTotals | None:
        if {source, target} & self.down:
            return None
        self.copies.append((source, target, gaps))
        totals = SyncTotals()
        for gap in gaps:
            have = self.rows.get((source, table, gap.device), set())
            there = self.rows.setdefault((target, table, gap.device), set())
            new = {s for s in range(gap.start_s, gap.end_s) if s in have} - there
            there.update(new)
            totals.add(SyncTotals(missing=len(new), copied=len(new), inserted=len(new)))
        return totals

    async def registry(self) -> FleetRegistry | None:
        return None if set(self.names) <= self.down else self.fleet

    async def save_state_on(
        self, cluster: Cluster, group: str, state: DetectorState, forget_before_s: int
    ) -> bool:
        return cluster not in self.down

    async def load_state(
        self, group: str, since_s: int, tables: tuple[Table, ...]
    ) -> DetectorState | None:
        return None

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeSinks:
    """The control topic and the sinks behind it: requests in, statuses out.

    With `serve`, a sink answers a request at once: it writes the slots Kafka
    has (`kafka`) into its cluster and reports `completed`.
    """

    clusters: FakeClusters
    kafka: dict[tuple[Table, str], set[int]] = field(default_factory=dict)
    serve: bool = False
    published: list[ReplayRequest] = field(default_factory=list)
    answers: list[ReplayStatus] = field(default_factory=list)
    started: bool = False
    stopped: bool = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def publish(self, request: ReplayRequest) -> None:
        self.published.append(request)
        if not self.serve:
            return
        assert request.slots is not None
        lo, hi = int(request.slots.start.timestamp()), int(request.slots.end.timestamp())
        for device in request.devices or ():
            sent = self.kafka.get((request.table, device), set())
            self.clusters.hold(
                request.cluster, request.table, device, (s - E0 for s in sent if lo <= s < hi)
            )
        self.answers.append(
            ReplayStatus(
                request_id=request.id,
                cluster=request.cluster,
                table=request.table,
                state="completed",
            )
        )

    async def statuses(
        self, timeout_ms: int = 0, request_id: str | None = None
    ) -> list[ReplayStatus]:
        found, self.answers = self.answers, []
        return found


class FakeRetention:
    def __init__(self) -> None:
        self.holds = True

    async def covers(self, table: Table, since: datetime) -> bool:
        return self.holds


@dataclass
class World:
    service: GapDetectorService
    clock: Clock
    feed: FakeFeed
    clusters: FakeClusters
    sinks: FakeSinks
    retention: FakeRetention
    metrics: GapMetrics

    def send(self, device: str, seconds: Iterable[int], *, stored_in: Iterable[Cluster]) -> None:
        """Kafka brings `seconds` of `device` (rack table); the clusters named hold them."""
        seconds = list(seconds)
        self.feed.send("rack", device, seconds)
        self.sinks.kafka.setdefault(("rack", device), set()).update(E0 + s for s in seconds)
        for cluster in stored_in:
            self.clusters.hold(cluster, "rack", device, seconds)

    async def step_at(self, offset_s: float) -> None:
        """One turn of the loop with the clock at `E0 + offset_s`."""
        self.clock.now = E0 + offset_s
        await self.service.step()

    async def past_due(self) -> None:
        """The slots sent so far arrive at 120; at 130 `W` has settled and the feed caught up."""
        await self.step_at(120)
        await self.step_at(130)

    def results(self, window: Window = W) -> list[Any]:
        return [r for r in self.service.results if r.window == window]

    def gauge(self, cluster: str, kind: str, site: str = "site1") -> float:
        value: float = self.metrics.loss.labels(cluster, site, "rack", "minute", kind)._value.get()
        return value


def world(**settings: object) -> World:
    """A detector on the rack table's minutes, started 2 minutes after `W` began."""
    s = GapDetectorSettings.model_validate(
        {
            "gap_periods": ("minute",),
            "gap_tables": ("rack",),
            "gap_settle_s": SETTLE_S,
            "gap_lookback_s": 3600.0,
            "gap_coalesce_s": 5,
            "gap_replay_timeout_s": 30.0,
            **settings,
        }
    )
    clock = Clock(E0 + 120.0)
    metrics = GapMetrics(CollectorRegistry())
    tracker = SlotTracker(s.largest_period_s, s.smallest_period_s)
    feed = FakeFeed(tracker, clock)
    clusters = FakeClusters()
    sinks = FakeSinks(clusters)
    retention = FakeRetention()
    healer = Healer(
        clusters,
        metrics,
        sinks.publish,
        retention.covers,
        coalesce_s=s.gap_coalesce_s,
        replay_timeout_s=s.gap_replay_timeout_s,
        clock=clock,
    )
    service = GapDetectorService(
        s,
        metrics=metrics,
        tracker=tracker,
        feed=feed,
        statuses=sinks,
        requests=sinks,
        clusters=clusters,
        healer=healer,
        clock=clock,
    )
    return World(service, clock, feed, clusters, sinks, retention, metrics)


async def started(w: World) -> World:
    await w.service.start()
    return w


async def test_a_window_is_evaluated_once_settled_and_caught_up_and_only_once() -> None:
    w = await started(world())
    w.send(RACK1, range(60), stored_in=("local", "cloud"))
    await w.step_at(120)  # slots arrive now: settling until 125
    assert w.results() == []
    w.feed.behind = 10
    await w.step_at(126)  # settled, but the last catch-up (120) was before 125
    assert w.results() == []
    w.feed.behind = 0
    await w.step_at(126.5)  # caught up, but housekeeping runs once a second
    assert w.results() == []
    await w.step_at(127)
    assert [(r.table, r.window) for r in w.results()] == [("rack", W)]
    for t in (128, 129, 150, 200, 300):
        await w.step_at(t)
    assert len(w.results()) == 1
    # late data for the window makes it due again, once, after settling anew
    w.send(RACK2, range(10), stored_in=("local", "cloud"))
    await w.step_at(301)
    assert len(w.results()) == 1
    await w.step_at(306)
    assert len(w.results()) == 2
    await w.step_at(320)
    assert len(w.results()) == 2
    assert w.feed.commits >= 2  # positions committed now and then (every 10 s)


async def test_a_window_that_closes_while_running_is_evaluated_without_new_data() -> None:
    w = await started(world())
    w.send(RACK1, range(60), stored_in=("local", "cloud"))
    w.send(RACK1, range(120, 180), stored_in=("local", "cloud"))  # W+2 arrives as it happens
    await w.step_at(120)
    await w.step_at(184)  # W+2 ends at 180: not settled yet
    later = Window(E0 + 120, "minute")
    assert w.results(later) == []
    await w.step_at(185)
    assert len(w.results(later)) == 1


async def test_loss_gauges_follow_what_each_cluster_holds() -> None:
    w = await started(world(gap_heal=False))
    w.send(RACK1, range(60), stored_in=("local",))
    w.clusters.hold("cloud", "rack", RACK1, range(45))  # the cloud sink lost the last 15 s
    w.send(RACK2, range(30), stored_in=("local", "cloud"))  # RACK2 went silent at the source
    await w.past_due()
    (result,) = w.results()
    assert result.loss.total("local") == SlotCounts(120, 90, 90)
    assert result.loss.total("cloud") == SlotCounts(120, 90, 75)
    assert w.gauge("local", "sink") == 0.0
    assert w.gauge("cloud", "sink") == pytest.approx(15 / 120)
    assert w.gauge("local", "source") == pytest.approx(30 / 120)
    assert w.gauge("cloud", "total") == pytest.approx(45 / 120)
    assert w.sinks.published == []  # healing is off


async def test_sink_loss_files_one_replay_request_and_source_loss_none() -> None:
    w = await started(world())
    w.send(RACK1, range(60), stored_in=("local",))
    w.clusters.hold("cloud", "rack", RACK1, [*range(10), *range(20, 60)])
    w.send(RACK2, range(30), stored_in=("local", "cloud"))  # source loss: nothing to heal
    await w.past_due()
    (request,) = w.sinks.published
    assert request.cluster == "cloud"
    assert request.table == "rack"
    assert request.reason == "sink_loss"
    assert request.devices == (RACK1,)
    assert request.slots is not None
    assert (request.slots.start.timestamp(), request.slots.end.timestamp()) == (E0 + 10, E0 + 20)
    assert w.metrics.replay_requests.labels("cloud", "rack")._value.get() == 1
    assert set(w.service.healer.pending) == {request.id}
    assert w.clusters.copies == []  # Kafka holds the window: no copy while the replay runs


async def test_a_completed_replay_closes_the_gap_and_the_window_is_evaluated_again() -> None:
    w = await started(world())
    w.sinks.serve = True
    w.send(RACK1, range(60), stored_in=("local",))
    w.clusters.hold("cloud", "rack", RACK1, range(45))
    await w.past_due()  # evaluated: the request goes out and the sink answers
    assert len(w.sinks.published) == 1
    assert len(w.results()) == 1
    await w.step_at(131)  # the status is read, the gap checked, the window invalidated
    assert w.service.healer.history.closed == [("cloud", "rack", "replay", 15)]
    assert w.service.healer.pending == {}
    first, again = w.results()
    assert first.loss.total("cloud").sink_loss == 15
    assert again.loss.total("cloud").sink_loss == 0
    assert w.gauge("cloud", "sink") == 0.0
    assert len(w.sinks.published) == 1  # nothing left to ask for


async def test_when_kafka_no_longer_holds_the_window_the_gap_is_copied_instead() -> None:
    w = await started(world())
    w.retention.holds = False
    w.send(RACK1, range(60), stored_in=("local",))
    w.clusters.hold("cloud", "rack", RACK1, range(30))
    await w.past_due()
    assert w.sinks.published == []
    ((source, target, gaps),) = w.clusters.copies
    assert (source, target) == ("local", "cloud")
    assert [(g.device, g.start_s, g.end_s) for g in gaps] == [(RACK1, E0 + 30, E0 + 60)]
    assert w.service.healer.history.closed == [("cloud", "rack", "sync", 30)]
    assert w.metrics.sync_rows.labels("cloud", "rack")._value.get() == 30


async def test_an_unanswered_replay_is_checked_after_its_timeout_and_synced() -> None:
    w = await started(world(gap_replay_timeout_s=30.0))
    w.send(RACK1, range(60), stored_in=("local",))
    w.clusters.hold("cloud", "rack", RACK1, range(50))
    await w.past_due()
    assert len(w.sinks.published) == 1
    await w.step_at(159)
    assert w.service.healer.history.closed == []
    await w.step_at(160)  # the deadline: still missing, so copied from local
    assert w.service.healer.history.closed == [("cloud", "rack", "sync", 10)]
    assert w.service.healer.pending == {}


async def test_one_cluster_down_the_other_is_still_reported() -> None:
    w = await started(world())
    w.clusters.down = {"cloud"}
    w.send(RACK1, range(60), stored_in=("local",))
    await w.past_due()
    (result,) = w.results()
    assert result.clusters == ("local",)
    assert result.table_bytes == {"local": 8192}
    assert w.sinks.published == []  # the loss of an unreachable cluster is not known
    health = w.service.health()
    assert health.ok
    assert health.detail["clusters_up"] == ["local"]
    # both down: still healthy (a restart would not bring them back) until no window
    # has been evaluated for the bound; then unhealthy
    w.clusters.down = {"local", "cloud"}
    stale = w.service.settings.health_stale_s
    await w.step_at(130 + stale - 5)
    assert w.service.health().ok
    await w.step_at(130 + stale + 5)
    health = w.service.health()
    assert not health.ok
    assert float(str(health.detail["seconds_since_window"])) > stale


async def test_a_day_window_is_stored_in_the_loss_report() -> None:
    w = await started(world(gap_heal=False))
    w.send(RACK1, range(60), stored_in=("local", "cloud"))
    await w.step_at(120)
    day = Window(E0 - E0 % 86400, "day")
    await w.service.evaluate_one("rack", day)
    tables = {(r[0], r[3], r[5], r[6]) for r in w.clusters.reports}
    assert ("day", "local", "*", "*") in tables
    assert ("day", "cloud", "site1", RACK1) in tables
    await w.service.evaluate_one("rack", W)  # minutes are not stored
    assert {r[0] for r in w.clusters.reports} == {"day"}


async def test_run_starts_the_adapters_polls_until_stopped_and_closes_them() -> None:
    w = world()
    stop = asyncio.Event()
    poll = w.feed.poll

    async def poll_then_stop(timeout_ms: int) -> int:
        if w.feed.polls == 2:
            stop.set()
        return await poll(timeout_ms)

    w.feed.poll = poll_then_stop  # type: ignore[method-assign]
    await w.service.run(stop)
    assert w.feed.polls == 3
    assert w.clusters.prepared
    assert w.sinks.started
    assert w.feed.started is not None
    assert (w.feed.stopped, w.sinks.stopped, w.clusters.closed) == (True, True, True)


async def test_kafka_refusing_at_start_is_waited_for_with_backoff_not_fatal() -> None:
    w = world()
    tries: list[float] = []
    start = w.feed.start

    async def refuse_twice(
        rebuild_from: datetime, positions: Mapping[str, int] | None = None
    ) -> None:
        tries.append(w.clock())
        if len(tries) <= 2:
            raise ConnectionError("no Kafka")
        await start(rebuild_from, positions)

    w.feed.start = refuse_twice  # type: ignore[method-assign]
    await w.service.step()  # refused: the service keeps running and says why
    assert not _started(w)
    waiting = w.service.health().detail["waiting_for"]
    assert isinstance(waiting, dict)
    assert "kafka" in waiting
    assert w.service.health().ok  # waiting is not (yet) unhealthy
    await w.service.step()  # inside the backoff: not asked again
    assert len(tries) == 1
    for t in range(121, 200):
        await w.step_at(t)
        if _started(w):
            break
    assert len(tries) == 3
    assert w.service.health().detail["waiting_for"] == {}
    await w.service.close()
    assert (w.feed.stopped, w.sinks.stopped, w.clusters.closed) == (True, True, True)


def _started(w: World) -> bool:
    return w.service.started
