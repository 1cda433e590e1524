"""Healing sink loss: replay requests first, cross-cluster sync when Kafka cannot help.

For each cluster, the slots it lacks in a window (reached but not present)
are split in two:

- slots the detector saw in Kafka: while Kafka still holds the window, they
  are asked for with replay requests (neighbouring gaps of all devices
  coalesced into one time range per request, with the devices named);
- slots it did not see in Kafka (so another cluster holds them), or all of
  them once Kafka no longer holds the window: copied from the other cluster;
  what the other cluster lacks too is restored from the Parquet archive (when
  one is configured), the last copy of a reading once Kafka has forgotten it.

Requests name at most `MAX_DEVICES_PER_REQUEST` devices: a fleet-wide gap
becomes several requests. A request is checked when the sink reports it
finished, or after a timeout. When a time-range replay completed without
closing the gap (a reading the collector spooled long behind live traffic has
a record time far after its slot, past the replay's lateness allowance), the
healer escalates once to offset-range replays over the offsets that carried
the window's slots (from the tracker). What is still missing after that is
copied from the other cluster if it has it, and whatever remains is counted
and logged as a gap that did not close. Source loss is never touched: nothing
is invented. Windows in which a gap closed are handed back (`take_healed`) so
the service evaluates them again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_common.replay import (
    MAX_DEVICES_PER_REQUEST,
    OffsetRange,
    ReplayRequest,
    ReplayStatus,
    SlotRange,
)
from ess_gapdetector.evaluate import WindowResult
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.ports import ArchiveRestore, ClusterAccess
from ess_gapdetector.windows import Window
from ess_loss.lossmath import bits_in, coalesce, runs_of_set_bits
from ess_loss.slots import SlotTracker
from ess_tables.crosssync import SlotGap, gaps_from_bits

log = logging.getLogger(__name__)

Publish = Callable[[ReplayRequest], Awaitable[None]]
KafkaCovers = Callable[[Table, datetime], Awaitable[bool]]


@dataclass
class PendingReplay:
    request: ReplayRequest
    window: Window
    missing: dict[str, int]  # device -> bits relative to window start
    deadline: float
    status: ReplayStatus | None = None


@dataclass
class HealLog:
    """What the healer did, for health details and tests (bounded)."""

    requests: list[ReplayRequest] = field(default_factory=list)
    closed: list[tuple[str, str, str, int]] = field(default_factory=list)  # cluster, table, how, n
    unclosed: list[tuple[str, str, int]] = field(default_factory=list)
    limit: int = 1000

    def trim(self) -> None:
        for items in (self.requests, self.closed, self.unclosed):
            del items[: max(0, len(items) - self.limit)]


class Healer:
    def __init__(
        self,
        clusters: ClusterAccess,
        metrics: GapMetrics,
        publish: Publish,
        kafka_covers: KafkaCovers,
        *,
        coalesce_s: int = 60,
        replay_timeout_s: float = 600.0,
        sync_chunk_rows: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        tracker: SlotTracker | None = None,
        archive: ArchiveRestore | None = None,
    ) -> None:
        self.clusters = clusters
        self.metrics = metrics
        self.publish = publish
        self.kafka_covers = kafka_covers
        self.coalesce_s = coalesce_s
        self.replay_timeout_s = replay_timeout_s
        self.sync_chunk_rows = sync_chunk_rows
        self.clock = clock
        self.tracker = tracker  # where slots were in Kafka: for offset-range escalation
        self.archive = archive  # the last fallback: restore from the Parquet archive
        self.pending: dict[str, PendingReplay] = {}
        self.history = HealLog()
        self._healed: list[tuple[Table, Window]] = []

    def take_healed(self) -> list[tuple[Table, Window]]:
        """Windows in which a gap closed since the last call: to be evaluated again."""
        healed, self._healed = self._healed, []
        return healed

    def _other(self, cluster: Cluster) -> Cluster | None:
        return next((c for c in self.clusters.names if c != cluster), None)

    def _in_flight(self, cluster: Cluster, table: Table, window: Window, device: str) -> int:
        """Bits (relative to `window`) already asked for by a pending replay."""
        bits = 0
        for p in self.pending.values():
            if p.request.cluster != cluster or p.request.table != table:
                continue
            if device in p.missing:
                shift = p.window.start_s - window.start_s
                other = p.missing[device]
                bits |= other << shift if shift >= 0 else other >> -shift
        return bits

    async def heal(self, result: WindowResult) -> None:
        for cluster in result.clusters:
            via_kafka: dict[str, int] = {}
            via_sync: dict[str, int] = {}
            for d in result.loss.devices:
                missing = d.sink_missing.get(cluster, 0)
                missing &= ~self._in_flight(cluster, result.table, result.window, d.device)
                if missing & d.seen_in_kafka:
                    via_kafka[d.device] = missing & d.seen_in_kafka
                if missing & ~d.seen_in_kafka:
                    via_sync[d.device] = missing & ~d.seen_in_kafka
            if via_kafka and not await self.kafka_covers(result.table, result.window.start):
                for device, bits in via_kafka.items():
                    via_sync[device] = via_sync.get(device, 0) | bits
                via_kafka = {}
            if via_kafka:
                await self._request_replays(cluster, result.table, result.window, via_kafka)
            if via_sync:
                await self._sync_and_check(cluster, result.table, result.window, via_sync)

    async def _request_replays(
        self, cluster: Cluster, table: Table, window: Window, missing: dict[str, int]
    ) -> None:
        runs = [run for bits in missing.values() for run in runs_of_set_bits(bits)]
        for lo, hi in coalesce(runs, self.coalesce_s):
            in_range = {d: bits_in(b, lo, hi) for d, b in missing.items() if bits_in(b, lo, hi)}
            slots = SlotRange(
                start=datetime.fromtimestamp(window.start_s + lo, UTC),
                end=datetime.fromtimestamp(window.start_s + hi, UTC),
            )
            for part in device_chunks(in_range):
                request = ReplayRequest(
                    cluster=cluster,
                    table=table,
                    slots=slots,
                    devices=tuple(sorted(part)),
                    reason="sink_loss",
                    requested_by="gapdetector",
                )
                await self._publish(request, window, part)

    async def _publish(self, request: ReplayRequest, window: Window, part: dict[str, int]) -> None:
        cluster, table = request.cluster, request.table
        await self.publish(request)
        slots = sum(b.bit_count() for b in part.values())
        self.pending[request.id] = PendingReplay(
            request, window, part, self.clock() + self.replay_timeout_s
        )
        self.history.requests.append(request)
        self.history.trim()
        self.metrics.replay_requests.labels(cluster, table).inc()
        self.metrics.pending_replays.set(len(self.pending))
        log.info(
            "replay requested for %d missing slots of %d devices: %s %s %s",
            slots,
            len(part),
            cluster,
            table,
            _range_text(request),
            extra={"request_id": request.id, "cluster": cluster, "table": table},
        )

    async def on_status(self, status: ReplayStatus) -> None:
        pending = self.pending.get(status.request_id)
        if pending is None or not status.finished:
            return
        pending.status = status
        await self._verify(self.pending.pop(status.request_id))

    async def check_timeouts(self) -> None:
        now = self.clock()
        for request_id in [k for k, p in self.pending.items() if p.deadline <= now]:
            pending = self.pending.pop(request_id)
            log.warning(
                "replay %s: no completion within %.0fs, checking anyway",
                request_id,
                self.replay_timeout_s,
            )
            await self._verify(pending)

    async def _still_missing(
        self, cluster: Cluster, table: Table, window: Window, missing: dict[str, int]
    ) -> dict[str, int] | None:
        now = await self.clusters.presence(cluster, table, window.start, window.end, list(missing))
        if now is None:
            return None
        left = {d: bits & ~now.get(d, 0) for d, bits in missing.items()}
        return {d: b for d, b in left.items() if b}

    async def _verify(self, pending: PendingReplay) -> None:
        self.metrics.pending_replays.set(len(self.pending))
        req = pending.request
        left = await self._still_missing(req.cluster, req.table, pending.window, pending.missing)
        if left is None:
            return
        if not left:
            self._closed(req.cluster, req.table, pending.window, "replay", pending.missing)
            return
        if req.slots is not None and await self._escalate(req, pending.window, left):
            return
        await self._sync_and_check(req.cluster, req.table, pending.window, left)

    async def _escalate(self, req: ReplayRequest, window: Window, left: dict[str, int]) -> bool:
        """Offset-range replays for what a time-range replay left open; False when the
        offsets are not known (then the caller falls back to a sync)."""
        if self.tracker is None:
            return False
        by_partition: dict[int, dict[str, int]] = {}
        for device, bits in left.items():
            partition = self.tracker.partition_of.get((req.table, device))
            if partition is not None:
                by_partition.setdefault(partition, {})[device] = bits
        asked = False
        for partition, missing in sorted(by_partition.items()):
            span = self.tracker.offset_span(req.table, partition, window.start_s, window.end_s)
            if span is None:
                continue
            for part in device_chunks(missing):
                request = ReplayRequest(
                    cluster=req.cluster,
                    table=req.table,
                    offsets=OffsetRange(
                        partition=partition, start_offset=span[0], end_offset=span[1]
                    ),
                    devices=tuple(sorted(part)),
                    reason="sink_loss",
                    requested_by="gapdetector",
                )
                log.info(
                    "time-range replay %s left %d slots open: escalating to offsets",
                    req.id,
                    sum(b.bit_count() for b in part.values()),
                )
                await self._publish(request, window, part)
                asked = True
        located = {d for part in by_partition.values() for d in part}
        unknown = {d: b for d, b in left.items() if d not in located}
        if unknown:
            await self._sync_and_check(req.cluster, req.table, window, unknown)
        return asked

    async def _sync_and_check(
        self, cluster: Cluster, table: Table, window: Window, missing: dict[str, int]
    ) -> None:
        source = self._other(cluster)
        if source is not None:
            await self._copy(source, cluster, table, window, missing)
        left = await self._still_missing(cluster, table, window, missing)
        if left is None:
            return
        if not left:
            self._closed(cluster, table, window, "sync", missing)
            return
        if self.archive is not None:
            await self._restore(cluster, table, window, left)
            restored = left
            left = await self._still_missing(cluster, table, window, restored)
            if left is None:
                return
            if not left:
                self._closed(cluster, table, window, "archive", restored)
                return
        slots = sum(b.bit_count() for b in left.values())
        self.metrics.gaps_unclosed.labels(cluster, table).inc()
        self.history.unclosed.append((cluster, table, slots))
        self.history.trim()
        runs = {d: runs_of_set_bits(b)[:5] for d, b in sorted(left.items())[:20]}
        log.warning(
            "gap did not close: %d slots of %d devices still missing in %s %s (%s)",
            slots,
            len(left),
            cluster,
            table,
            window,
            extra={
                "cluster": cluster,
                "table": table,
                "period_start": window.start.isoformat(),
                "missing_runs": {
                    d: [(window.start_s + a, window.start_s + b) for a, b in r]
                    for d, r in runs.items()
                },
            },
        )

    async def _copy(
        self,
        source: Cluster,
        target: Cluster,
        table: Table,
        window: Window,
        missing: dict[str, int],
    ) -> None:
        gaps = window_gaps(window, missing)
        totals = await self.clusters.copy(source, target, table, gaps, self.sync_chunk_rows)
        if totals is None:
            return
        self.metrics.sync_rows.labels(target, table).inc(totals.inserted)
        log.info(
            "synced %d rows of %s from %s to %s (%d slots were missing, %d already present)",
            totals.inserted,
            table,
            source,
            target,
            totals.missing,
            totals.already_present,
            extra={"cluster": target, "table": table, "period_start": window.start.isoformat()},
        )

    async def _restore(
        self, target: Cluster, table: Table, window: Window, missing: dict[str, int]
    ) -> None:
        assert self.archive is not None
        gaps = window_gaps(window, missing)
        totals = await self.archive.restore(target, table, gaps, self.sync_chunk_rows)
        if totals is None:
            return
        self.metrics.archive_rows.labels(target, table).inc(totals.inserted)
        log.info(
            "restored %d rows of %s into %s from the archive (%d of the slots were archived)",
            totals.inserted,
            table,
            target,
            totals.missing,
            extra={"cluster": target, "table": table, "period_start": window.start.isoformat()},
        )

    def _closed(
        self, cluster: Cluster, table: Table, window: Window, how: str, missing: dict[str, int]
    ) -> None:
        slots = sum(b.bit_count() for b in missing.values())
        self.metrics.gaps_closed.labels(cluster, table, how).inc()
        self.history.closed.append((cluster, table, how, slots))
        self.history.trim()
        log.info(
            "gap closed by %s: %d slots of %d devices in %s %s (%s)",
            how,
            slots,
            len(missing),
            cluster,
            table,
            window,
            extra={"cluster": cluster, "table": table, "how": how},
        )
        self._healed.append((table, window))


def window_gaps(window: Window, missing: dict[str, int]) -> list[SlotGap]:
    """Per device, the runs of `missing` (bits relative to the window's start)."""
    return [
        g
        for device, bits in sorted(missing.items())
        for g in gaps_from_bits(device, window.start_s, bits)
    ]


def device_chunks(missing: dict[str, int]) -> list[dict[str, int]]:
    """`missing` split into parts of at most `MAX_DEVICES_PER_REQUEST` devices."""
    devices = sorted(missing)
    return [
        {d: missing[d] for d in devices[i : i + MAX_DEVICES_PER_REQUEST]}
        for i in range(0, len(devices), MAX_DEVICES_PER_REQUEST)
    ]


def _range_text(request: ReplayRequest) -> str:
    if request.slots is not None:
        return f"{request.slots.start.isoformat()} .. {request.slots.end.isoformat()}"
    assert request.offsets is not None
    o = request.offsets
    return f"partition {o.partition} offsets {o.start_offset} .. {o.end_offset}"
