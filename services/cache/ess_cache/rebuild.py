"""Rebuilding the open days from TimescaleDB after Redis lost its data.

Order of work (one instance at a time, under a lock in Redis):

1. remove the dedupe bitmaps and the buckets of the open days that survived;
2. hour by hour: read per-device minute aggregates from SQL, write that
   hour's slice of each device's bitmap, roll the minutes up into every
   series and resolution, and write the buckets that are complete;
3. write the remaining (open) buckets and the latest row of each device;
4. set the marker with a new generation, only if the lock is still ours (a
   flush during the rebuild removes the lock, and the rebuild starts over).

The bitmaps mark what SQL holds, so Kafka messages for those slots are
duplicates afterwards. What SQL does not hold yet comes from Kafka, per
partition: before reading SQL the rebuild takes the offsets the rebuild
cluster's sink group has committed (`sink_offsets`); the sink commits only
after its transaction, so every message before them is in SQL by then. The
report names those offsets, and every partition is read again from exactly
there (one the group never committed: from the window's start, `rewind_to`).
A partition whose sink lags, or a stretch the sink has not committed yet,
is therefore re-read however old it is, where a time-based margin would skip
it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg
from aiokafka import TopicPartition

from ess_cache.rebuild_sql import DeviceCache, latest_readings, minute_rows
from ess_cache.rewind import RewindTarget
from ess_cache.rollup import HOUR_S, MinuteRow, Rollup, hour_segments
from ess_cache.settings import CacheSettings
from ess_cache.store import RedisStore
from ess_cache.window import Retention
from ess_cache_layout.measures import DAY_S, bucket_start

log = logging.getLogger(__name__)


class RebuildInterruptedError(Exception):
    """Redis lost the rebuild lock (flushed or restarted) while the rebuild ran."""

    retriable = True


@dataclass(frozen=True)
class RebuildReport:
    generation: str
    window_from: int
    rewind_to: int  # partitions without a sink offset are read again from this slot
    minute_rows: int = 0
    buckets: int = 0
    seconds: float = 0.0
    done_here: bool = True  # False: another instance rebuilt, we waited for it
    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)  # the sink group's


class Rebuilder:
    def __init__(
        self,
        settings: CacheSettings,
        store: RedisStore,
        retention: Retention,
        connect_db: Callable[[], Awaitable[asyncpg.Connection]],
        sink_offsets: Callable[[], Awaitable[dict[TopicPartition, int]]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.retention = retention
        self.connect_db = connect_db  # to the cluster the rebuild reads
        self.sink_offsets = sink_offsets  # what that cluster's sink group has committed

    async def rebuild(self, reason: str) -> RebuildReport:
        token = uuid.uuid4().hex
        lock_s = self.settings.cache_rebuild_lock_s
        while not await self.store.try_lock(token, lock_s):
            waited = await self._wait_for_other()
            if waited is not None:
                return waited
        started = time.monotonic()
        try:
            conn = await self.connect_db()
            try:
                report = await self._rebuild(conn, token, reason, started)
            finally:
                await conn.close()
        except BaseException:
            await asyncio.shield(self._release_quietly(token))
            raise
        log.info(
            "rebuilt the cache from SQL (%s): %d minute rows, %d buckets in %.1fs; rewind to %d",
            reason,
            report.minute_rows,
            report.buckets,
            report.seconds,
            report.rewind_to,
        )
        return report

    async def _release_quietly(self, token: str) -> None:
        try:
            await self.store.release_lock(token)
        except Exception:
            log.debug("could not release the rebuild lock", exc_info=True)

    async def _wait_for_other(self) -> RebuildReport | None:
        """Wait while another instance rebuilds; its report, or None if its lock vanished."""
        while await self.store.lock_holder() is not None:  # noqa: ASYNC110 - the lock is in Redis
            await asyncio.sleep(0.5)
        marker = await self.store.marker()
        target = RewindTarget.from_marker(marker)
        if "generation" not in marker or target is None:
            return None
        return RebuildReport(
            marker["generation"],
            int(marker["window_from"]),
            target.from_slot,
            done_here=False,
            offsets=target.offsets,
        )

    async def _rebuild(
        self, conn: asyncpg.Connection, token: str, reason: str, started: float
    ) -> RebuildReport:
        now = int(time.time())
        window_from = self.retention.accept_from(now)
        offsets = await self.sink_offsets()  # before SQL: all before them is in SQL then
        await self.store.clear_window(window_from)
        rollup = Rollup(self.retention)
        devices = DeviceCache()
        rows_read = buckets = 0
        for hour in range(window_from, now + 1, HOUR_S):
            rows: list[MinuteRow] = []
            for table in self.settings.cache_tables:
                rows += await minute_rows(conn, table, hour, hour + HOUR_S, devices)
            rows_read += len(rows)
            day = bucket_start(hour, DAY_S)
            await self.store.write_seen(
                day, hour, hour_segments(rows, hour), day + self.retention.seen_tail_s
            )
            for row in rows:
                rollup.add(row)
            buckets += await self.store.write_buckets(rollup.pop_closed(hour + HOUR_S), now)
            if not await self.store.extend_lock(token, self.settings.cache_rebuild_lock_s):
                raise RebuildInterruptedError("the rebuild lock vanished (Redis flushed?)")
        buckets += await self.store.write_buckets(rollup.pop_all(), now)
        for table in self.settings.cache_tables:
            latest = [item async for item in latest_readings(conn, table, window_from)]
            await self.store.write_latest(latest, self.settings.cache_latest_ttl_s)
        generation = f"{now}-{token[:8]}"
        target = RewindTarget(window_from, offsets)
        marker = {
            "generation": generation,
            "rebuilt_at": str(now),
            "window_from": str(window_from),
            **target.marker_fields(),
            "reason": reason,
        }
        if not await self.store.finish_rebuild(token, marker):
            raise RebuildInterruptedError("the rebuild lock vanished before the marker was set")
        return RebuildReport(
            generation,
            window_from,
            window_from,
            rows_read,
            buckets,
            time.monotonic() - started,
            offsets=offsets,
        )
