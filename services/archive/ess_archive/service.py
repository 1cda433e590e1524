"""The archive service: Kafka -> Parquet in object storage, each reading once.

Checkpoint order: stage decoded readings in memory (dropping slots already
archived), then flush: for every partition-day one segment object and one
conditional manifest update (`ess_archive.writer`), then commit the Kafka
offsets, only for partitions still owned. Nothing is committed before the
manifest that makes its readings part of the archive is stored; a crash
anywhere re-reads from the last commit and the slots already archived are
dropped as duplicates. When the object store is away the service keeps what
it staged, pauses its partitions (polling with them paused so the group
keeps it), retries with the shared backoff and commits nothing meanwhile;
then it catches up. Roll-ups of days' segments into parts run between
flushes. The adapters are built in `ess_archive.bootstrap`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from aiokafka import TopicPartition

from ess_archive.metrics import ArchiveMetrics
from ess_archive.settings import ArchiveSettings
from ess_archive.stage import Stager
from ess_archive.writer import ArchiveWriter
from ess_archive_layout.layout import PartitionDay
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.store import ArchiveError, ArchiveRefused
from ess_common.backoff import Backoff
from ess_common.http import Health
from ess_common.kafka import RevokeHook
from ess_tables.batch import BatchDecoder, DecodedBatch, Record

log = logging.getLogger(__name__)

T = TypeVar("T")
KEEP_DAYS_LOADED = 64  # partition-days whose archived slots stay in memory when idle


async def _once(operation: Callable[[], Awaitable[int]]) -> int:
    """One attempt, no holding (inside a revocation the group waits for us)."""
    return await operation()


class GroupMember(Protocol):
    """What the loop needs of its consumer (`OffsetCommittingConsumer`, or a fake)."""

    def on_revoke(self, hook: RevokeHook) -> None: ...
    def assignment(self) -> frozenset[TopicPartition]: ...
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]: ...
    async def hold(
        self, partitions: Iterable[TopicPartition] | None = None, timeout_ms: int = 100
    ) -> dict[TopicPartition, list[Record]]: ...
    def give_back(self, fetched: Mapping[TopicPartition, Sequence[Record]]) -> None: ...
    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...
    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class AbandonedError(Exception):
    """Stop was requested while the object store was unavailable: nothing committed."""


class ArchiveService:
    name = "archive"

    def __init__(
        self,
        settings: ArchiveSettings,
        *,
        consumer: GroupMember,
        decoder: BatchDecoder,
        writer: ArchiveWriter,
        reader: ArchiveReader,
        metrics: ArchiveMetrics,
        backoff: Backoff,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.decoder = decoder
        self.writer = writer
        self.reader = reader
        self.metrics = metrics
        self.backoff = backoff
        self.stager = Stager()
        self.offsets: dict[TopicPartition, int] = {}  # last offset staged, not yet committed
        self.days_with_segments: set[PartitionDay] = set()
        self.last_commit = time.monotonic()
        self.last_flush = time.monotonic()
        self.holding_since: float | None = None
        self.store_error = ""
        self._lock = asyncio.Lock()  # staging, flushing and a revocation's flush, one at a time
        self._revoked_unflushed = False
        self._stop = asyncio.Event()
        consumer.on_revoke(self.partitions_revoked)

    # -- health -----------------------------------------------------------------------------

    def health(self) -> Health:
        now = time.monotonic()
        stalled = (
            self.holding_since is not None
            and now - self.last_commit > self.settings.archive_stall_s
        )
        return Health(
            ok=not stalled,
            detail={
                "object_store": "down" if self.holding_since is not None else "up",
                "store_error": self.store_error,
                "staged_rows": self.stager.count,
                "seconds_since_commit": round(now - self.last_commit, 1),
                "days_with_segments": len(self.days_with_segments),
            },
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await self.consumer.start()
        try:
            await self._rescan()
            await self._loop(stop)
        except AbandonedError:
            log.warning(
                "stopping while the object store is unavailable: %d staged readings"
                " abandoned, not committed (read again on the next start)",
                self.stager.count,
            )
        finally:
            await self.consumer.stop()

    async def _loop(self, stop: asyncio.Event) -> None:
        s = self.settings
        next_rollup = time.monotonic() + s.archive_rollup_check_s
        while not stop.is_set():
            room = max(1, s.archive_flush_rows - self.stager.count)
            fetched = await self.consumer.getmany(timeout_ms=500, max_records=min(room, 20_000))
            if fetched:
                await self._stage(fetched)
            if self._flush_due():
                await self.flush_and_commit()
            if time.monotonic() >= next_rollup:
                await self.rollups()
                next_rollup = time.monotonic() + s.archive_rollup_check_s
        await self.flush_and_commit()

    def _flush_due(self) -> bool:
        if self.stager.count >= self.settings.archive_flush_rows:
            return True
        waited = time.monotonic() - self.last_flush
        return bool(self.offsets) and waited >= self.settings.archive_flush_s

    async def _stage(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        batch = DecodedBatch()
        self.decoder.add(batch, fetched)
        for poison in batch.poison:
            self.metrics.skipped.labels(poison.reason).inc()
        async with self._lock:  # a revocation's flush never sees half a batch
            for table, part in batch.tables.items():
                for pd in sorted(self.stager.unknown_days(table, part.rows)):
                    keys = await self._until_done(partial(self.writer.load_keys, pd))
                    self.stager.load(pd, keys)
                _, duplicates = self.stager.add(table, part.rows)
                self.metrics.duplicates.labels(table).inc(duplicates)
            self.offsets.update(batch.last_offsets)
            self.metrics.staged_rows.set(self.stager.count)
            self._forget_if_revoked()

    async def flush_and_commit(self) -> None:
        """Make every staged reading durable, then commit the offsets that carried them;
        while the object store is away, hold (and commit nothing) until it is back."""
        await self._flush(self._until_done)

    async def _flush(
        self, attempt: Callable[[Callable[[], Awaitable[int]]], Awaitable[int]]
    ) -> None:
        async with self._lock:
            await self._flush_locked(attempt)
            self._forget_if_revoked()

    async def _flush_locked(
        self, attempt: Callable[[Callable[[], Awaitable[int]]], Awaitable[int]]
    ) -> None:
        started = time.perf_counter()
        for pd in self.stager.pending():
            written = await attempt(partial(self.writer.flush_day, pd, self.stager.rows[pd]))
            self.stager.done(pd)
            self.days_with_segments.add(pd)
            self.metrics.rows_archived.labels(pd.table).inc(written)
        if self.offsets:
            committed = await self.consumer.commit_processed(self.offsets)
            self.offsets = {}
            if committed:
                self.last_commit = time.monotonic()
                self.metrics.last_commit.set_to_current_time()
        self.last_flush = time.monotonic()
        self.stager.forget_idle_days(KEEP_DAYS_LOADED)
        self.metrics.staged_rows.set(self.stager.count)
        self.metrics.flush_seconds.observe(time.perf_counter() - started)

    async def _until_done(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` until the store answers; meanwhile hold the partitions (paused,
        polled so the group keeps this member) and commit nothing."""
        while True:
            try:
                result = await operation()
            except ArchiveError as exc:
                kind = "refused" if isinstance(exc, ArchiveRefused) else "unavailable"
                self.metrics.store_errors.labels(kind).inc()
                self.store_error = str(exc)[:300]
                if self.holding_since is None:
                    self.holding_since = time.monotonic()
                    self.metrics.holding.set(1)
                    log.warning("object store unavailable, holding (nothing committed): %s", exc)
                await self._hold(self.backoff.next_delay())
                continue
            if self.holding_since is not None:
                log.info("object store back after %.1fs", time.monotonic() - self.holding_since)
                self.holding_since = None
                self.metrics.holding.set(0)
                self.consumer.resume(self.consumer.assignment())
            self.backoff.reset()
            self.store_error = ""
            return result

    async def _hold(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise AbandonedError
            got = await self.consumer.hold(timeout_ms=200)
            self.consumer.give_back(got)  # assigned during the poll: read after the outage

    async def partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        """Finish (bounded) the flush of what is staged, so its offsets are committed while
        the partitions are still owned; otherwise forget it for their next owner."""
        if not self.stager.count and not self.offsets:
            return
        deadline = time.monotonic() + self.settings.archive_revoke_wait_s
        try:
            await asyncio.wait_for(self._lock.acquire(), self.settings.archive_revoke_wait_s)
        except TimeoutError:  # busy (the store is away): forgotten once that step ends
            self._revoked_unflushed = True
            log.warning(
                "partitions revoked while the archive waits for its store: what it"
                " staged is forgotten, their next owner archives it"
            )
            return
        try:
            remaining = max(0.1, deadline - time.monotonic())
            await asyncio.wait_for(self._flush_locked(_once), remaining)
        except (TimeoutError, ArchiveError) as exc:
            log.warning(
                "partitions revoked before the staged readings were durable (%s):"
                " forgotten, their next owner archives them",
                type(exc).__name__,
            )
            self._forget()
        finally:
            self._lock.release()

    def _forget_if_revoked(self) -> None:
        if self._revoked_unflushed:
            self._forget()

    def _forget(self) -> None:
        self.stager.forget()
        self.offsets = {}
        self._revoked_unflushed = False
        self.metrics.staged_rows.set(0)

    # -- roll-ups ---------------------------------------------------------------------------

    async def rollups(self, force: bool = False) -> int:
        """Roll up the days whose segments are due; failures wait for the next check."""
        done = 0
        for pd in sorted(self.days_with_segments):
            try:
                if await self.writer.rollup(pd, force=force):
                    done += 1
                manifest = (await self.reader.manifest(pd)).manifest
                if not manifest.segments:
                    self.days_with_segments.discard(pd)
                    await self.writer.delete_orphans(pd)
            except ArchiveError as exc:
                self.metrics.rollups.labels(pd.table, "failed").inc()
                log.warning("roll-up of %s failed, retried at the next check: %s", pd.prefix, exc)
                break
        return done

    async def _rescan(self) -> None:
        """Days of the last `archive_rescan_days` with segments left by an earlier run."""
        since = (datetime.now(UTC) - timedelta(days=self.settings.archive_rescan_days)).date()
        try:
            for pd in await self.reader.partition_days(self.settings.archive_tables, start=since):
                if (await self.reader.manifest(pd)).manifest.segments:
                    self.days_with_segments.add(pd)
        except ArchiveError as exc:
            log.warning("could not list the archive's recent days (roll-ups wait): %s", exc)
