"""The cache service: Kafka -> exact aggregates, latest readings and anomalies in Redis.

Checkpoint order: the Redis scripts for a batch succeed, then its offsets are
committed; the next batch is fetched and decoded meanwhile, and applied after.
Redis away: hold the batch, keep the group membership with paused partitions,
retry with backoff. Redis flushed or restarted (the marker is gone): rebuild
the open days from TimescaleDB, rewind the partitions, go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg

from ess_cache.batch import Accepted, PreparedBatch, prepare_batch
from ess_cache.decode import CacheReading, ReadingDecoder
from ess_cache.metrics import CacheMetrics
from ess_cache.partitions import PartitionControl
from ess_cache.plan import PlanConfig, ScriptCall, iter_calls
from ess_cache.ports import Consumer, Fetched, Rebuild, SitePasses, Store
from ess_cache.rebuild import RebuildInterruptedError
from ess_cache.rewind import RewindTarget
from ess_cache.rules import Anomaly, AnomalyRules, RuleEvaluator
from ess_cache.settings import CacheSettings
from ess_cache.store import REDIS_UNAVAILABLE, ApplyResult
from ess_cache.window import Retention
from ess_common.backoff import Backoff, sleep_unless_stopped
from ess_common.http import Health

log = logging.getLogger(__name__)
T = TypeVar("T")
_SLICE = 2000  # readings decoded or judged between two yields to the event loop
# Worth another try after a pause: Redis or the database away, or a flush mid-rebuild.
_RETRIABLE = (
    *REDIS_UNAVAILABLE,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    RebuildInterruptedError,
)
_RETRY_INITIAL_S = 0.4  # the first retry comes after 0.2-0.4 s, then doubling up to the cap


class CacheService:
    name = "cache"

    def __init__(
        self,
        settings: CacheSettings,
        *,
        metrics: CacheMetrics,
        rules: AnomalyRules,
        retention: Retention,
        store: Store,
        consumer: Consumer,
        rebuilder: Rebuild,
        sites: SitePasses,
    ) -> None:
        """The adapters come built (see `ess_cache.bootstrap`); this only runs them."""
        self.settings = settings
        self.metrics = metrics
        self.rules = rules
        self.evaluator = RuleEvaluator(rules)
        self.decoder = ReadingDecoder()
        self.retention = retention
        self.plan = PlanConfig(
            retention,
            settings.cache_anomaly_max_entries,
            settings.cache_latest_ttl_s,
            settings.cache_script_readings,
        )
        self.store = store
        self.rebuilder = rebuilder
        self.sites = sites
        self.consumer = consumer
        self.partitions = PartitionControl(self.consumer)
        self.generation: str | None = None
        self._pending_rewind: RewindTarget | None = None
        self._check_marker = asyncio.Event()
        self._redis_ok = False
        self._rebuilding = False
        self._last_progress = time.monotonic()

    def health(self) -> Health:
        return Health(
            ok=self._redis_ok or self._rebuilding,
            detail={
                "redis_up": self._redis_ok,
                "rebuilding": self._rebuilding,
                "generation": self.generation,
                "seconds_since_progress": round(time.monotonic() - self._last_progress, 1),
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            self.generation = await self._retrying(self.store.generation, "marker", stop)
            if self.generation is None and not stop.is_set():
                await self._rebuild("start", stop, with_consumer=False)
            await self.consumer.start()
            try:
                site_pass = asyncio.create_task(self._site_pass_loop(stop), name="cache.sites")
                try:
                    await self._consume(stop)
                finally:
                    site_pass.cancel()
                    await asyncio.gather(site_pass, return_exceptions=True)
            finally:
                await self.consumer.stop()
        finally:
            await self.store.close()

    async def _consume(self, stop: asyncio.Event) -> None:
        """Fetch, decode and plan batch N+1 while Redis applies batch N; commit in order.

        At most two batches are held: the one in Redis and the next one.
        """
        s = self.settings
        in_flight: _InFlight | None = None
        try:
            while not stop.is_set():
                # With a batch in Redis take only what is already fetched: if nothing is,
                # finish that batch (and commit it) without waiting for more.
                fetched = await self.consumer.getmany(
                    timeout_ms=0 if in_flight else int(s.cache_batch_max_wait_s * 1000),
                    max_records=s.cache_batch_max_readings,
                )
                batch = await self._decode(fetched)
                calls = await self._plan(batch)
                if in_flight is not None:
                    kept = await self._finish(in_flight, stop, next_batch=batch)
                    in_flight = None
                    if not kept:
                        continue  # rewound: the batch in hand is read again
                if self._pending_rewind is not None and await self._rewind(
                    self._pending_rewind, batch
                ):
                    continue
                if self._check_marker.is_set():
                    self._check_marker.clear()
                    if await self._marker_changed(stop, batch):
                        continue
                if batch.last_offsets:
                    self._count_skipped(batch)
                    in_flight = _InFlight(batch, calls, asyncio.ensure_future(self._apply(calls)))
        finally:
            if in_flight is not None:
                await self._finish(in_flight, stop, next_batch=None)

    # Decoding and planning yield to the event loop every slice, so the pipeline of the
    # batch in flight keeps flowing to Redis: that is what makes the two overlap.

    async def _decode(self, fetched: Fetched) -> PreparedBatch:
        batch = PreparedBatch()
        now = time.time()
        accept = Accepted.at(now, self.retention.accept_from(int(now)), self.settings.bounds)
        for tp, records in fetched.items():
            for i in range(0, len(records), _SLICE):
                part = {tp: records[i : i + _SLICE]}
                prepare_batch(part, self.settings.topic_prefix, self.decoder, accept, batch)
                await asyncio.sleep(0)
        return batch

    async def _plan(self, batch: PreparedBatch) -> list[ScriptCall]:
        """Rules and script calls. Judging a reading again after a rewind gives the same
        anomalies (see RuleEvaluator), so planning before the previous batch is done is safe."""
        items: list[tuple[CacheReading, list[Anomaly]]] = []
        for i in range(0, len(batch.readings), _SLICE):
            items += [(r, self.evaluator.evaluate(r)) for r in batch.readings[i : i + _SLICE]]
            await asyncio.sleep(0)
        calls = []
        for call in iter_calls(items, int(time.time()), self.plan):
            calls.append(call)
            await asyncio.sleep(0)
        return calls

    async def _apply(self, calls: list[ScriptCall]) -> ApplyResult:
        return await self.store.apply(calls) if calls else await self._no_readings()

    async def _finish(
        self, job: _InFlight, stop: asyncio.Event, next_batch: PreparedBatch | None
    ) -> bool:
        """Wait for a batch's scripts (retrying on outages), then commit its offsets.

        False when the partitions were rewound (after a rebuild): then neither
        this batch's offsets nor `next_batch` count, both are read again.
        """
        backoff, paused, attempt = self._backoff(), False, job.task
        while True:
            try:
                result = await attempt
            except REDIS_UNAVAILABLE as exc:
                self._redis_failed("apply", exc)
                if stop.is_set():
                    return False
                await self.partitions.keepalive(backoff.next_delay())
                paused = True
                attempt = asyncio.ensure_future(self._apply(job.calls))
                continue
            break
        self._redis_back()
        if paused:
            self.partitions.resume_all()
        self.metrics.redis_seconds.labels("apply").observe(time.perf_counter() - job.started)
        both = _first_offsets(job.batch, next_batch)
        if result.generation is None:
            await self._rebuild("data_gone", stop)
            await self._rewind(self._pending_rewind or RewindTarget(0), both)
            return False
        if result.generation != self.generation:
            log.info("the cache was rebuilt elsewhere (generation %s)", result.generation)
            self.generation = result.generation
            await self._adopt_marker(both)
            return False
        self._count_applied(result)
        if await self.consumer.commit_processed(job.batch.last_offsets):
            self.metrics.batches.inc()
            self.metrics.observe_freshness(job.batch.readings)
        else:
            self.metrics.commit_failures.inc()
        self._last_progress = time.monotonic()
        return True

    async def _no_readings(self) -> ApplyResult:
        return ApplyResult(generation=await self.store.generation())

    def _count_skipped(self, batch: PreparedBatch) -> None:
        for table, n in batch.too_old.items():
            self.metrics.too_old.labels(table).inc(n)
        for table, n in batch.out_of_bounds.items():
            self.metrics.out_of_bounds.labels(table).inc(n)
        for reason, n in batch.undecodable.items():
            self.metrics.undecodable.labels(reason).inc(n)

    def _count_applied(self, result: ApplyResult) -> None:
        for table, n in result.applied.items():
            self.metrics.applied.labels(table).inc(n)
        for table, n in result.duplicates.items():
            self.metrics.duplicates.labels(table).inc(n)
        for rule, n in result.raised.items():
            self.metrics.anomalies.labels(rule).inc(n)

    async def _marker_changed(self, stop: asyncio.Event, batch: PreparedBatch) -> bool:
        """After the site pass saw no marker: rebuild or adopt; True if the batch was dropped."""
        generation = await self._retrying(self.store.generation, "marker", stop, True)
        if generation == self.generation or stop.is_set():
            return False
        if generation is None:
            await self._rebuild("data_gone", stop)
            await self._rewind(self._pending_rewind or RewindTarget(0), batch)
        else:
            self.generation = generation
            await self._adopt_marker(batch)
        return True

    async def _adopt_marker(self, batch: PreparedBatch) -> None:
        target = RewindTarget.from_marker(await self.store.marker())
        if target is not None:
            await self._rewind(target, batch)

    async def _rewind(self, target: RewindTarget, batch: PreparedBatch) -> bool:
        targets = await self.partitions.rewind(target, batch.first_offsets)
        if targets is None:
            self._pending_rewind = target
            return False
        self._pending_rewind = None
        # Judged readings may come again, from an earlier point: the rules start afresh
        # (anything they raise again for an applied reading is dropped by the script).
        self.evaluator.forget()
        log.info(
            "rewound %d partitions (%d to the sink group's offsets, the rest to slot %d)",
            len(targets),
            len(set(targets) & set(target.offsets)),
            target.from_slot,
        )
        return True

    async def _rebuild(self, reason: str, stop: asyncio.Event, with_consumer: bool = True) -> None:
        self._rebuilding = True
        started = time.monotonic()
        try:
            report = await self._retrying(
                lambda: self.rebuilder.rebuild(reason), "rebuild", stop, with_consumer
            )
        finally:
            self._rebuilding = False
        if report is None:
            return
        if report.done_here:
            self.metrics.rebuilds.labels(reason).inc()
            self.metrics.rebuild_seconds.observe(time.monotonic() - started)
        self.generation = report.generation
        self._pending_rewind = RewindTarget(report.rewind_to, report.offsets)

    async def _retrying(
        self,
        action: Callable[[], Awaitable[T]],
        op: str,
        stop: asyncio.Event,
        with_consumer: bool = False,
    ) -> T | None:
        """Run `action` until it succeeds or `stop` is set, backing off on outages.

        `with_consumer`: meanwhile poll Kafka with every partition paused (the
        group keeps this member), and resume them all at the end.
        """
        try:
            return await self._retry_loop(action, op, stop, with_consumer)
        finally:
            if with_consumer:
                self.partitions.resume_all()

    async def _retry_loop(
        self,
        action: Callable[[], Awaitable[T]],
        op: str,
        stop: asyncio.Event,
        with_consumer: bool,
    ) -> T | None:
        backoff = self._backoff()
        while not stop.is_set():
            task = asyncio.ensure_future(action())
            try:
                while not task.done() and with_consumer:
                    await self.partitions.keepalive(0.5)
                result = await task
            except _RETRIABLE as exc:
                self._redis_failed(op, exc)
            else:
                self._redis_back()
                return result
            finally:
                if not task.done():
                    task.cancel()
            delay = backoff.next_delay()
            if with_consumer:
                await self.partitions.keepalive(delay)
            else:
                await sleep_unless_stopped(stop, delay)
        return None

    def _backoff(self) -> Backoff:
        return Backoff(_RETRY_INITIAL_S, self.settings.cache_retry_max_s)

    def _redis_failed(self, op: str, exc: BaseException) -> None:
        if not isinstance(exc, REDIS_UNAVAILABLE):
            log.warning("%s failed, retrying with backoff: %s: %s", op, type(exc).__name__, exc)
            return
        if self._redis_ok:
            log.warning("Redis unavailable (%s), retrying with backoff: %s", op, exc)
        self._redis_ok = False
        self.metrics.redis_up.set(0)
        self.metrics.redis_errors.labels(op).inc()

    def _redis_back(self) -> None:
        if not self._redis_ok:
            self.metrics.redis_up.set(1)
            self._redis_ok = True

    async def _site_pass_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await self.sites.run_once() != self.generation and not self._rebuilding:
                    self._check_marker.set()
                self._redis_back()
            except REDIS_UNAVAILABLE as exc:
                self._redis_failed("site_pass", exc)
            except Exception:
                log.exception("site pass failed")
            await sleep_unless_stopped(stop, self.settings.cache_summary_interval_s)


@dataclass
class _InFlight:
    batch: PreparedBatch
    calls: list[ScriptCall]
    task: asyncio.Future[ApplyResult]
    started: float = field(default_factory=time.perf_counter)


def _first_offsets(batch: PreparedBatch, later: PreparedBatch | None) -> PreparedBatch:
    """A batch whose first offsets cover both (for a rewind that must re-read both)."""
    if later is None:
        return batch
    merged = PreparedBatch(first_offsets=dict(later.first_offsets))
    for tp, offset in batch.first_offsets.items():
        merged.first_offsets[tp] = min(offset, merged.first_offsets.get(tp, offset))
    return merged
