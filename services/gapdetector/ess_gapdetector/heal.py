"""Healing sink loss: replay requests first, cross-cluster sync when Kafka cannot help.

For each cluster, the slots it lacks in a window (reached but not present)
are split in two:

- slots the detector saw in Kafka: while Kafka still holds the window, they
  are asked for with replay requests (neighbouring gaps of all devices
  coalesced into one time range per request, with the devices named);
- slots it did not see in Kafka (so another cluster holds them), or all of
  them once Kafka no longer holds the window: copied from the other cluster.

A request is checked when the sink reports it finished, or after a timeout:
what is still missing is copied from the other cluster if it has it, and
whatever remains after that is counted and logged as a gap that did not
close. Source loss is never touched: nothing is invented. Windows in which a gap
closed are handed back (`take_healed`) so the service evaluates them again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_common.replay import ReplayRequest, ReplayStatus, SlotRange
from ess_gapdetector.evaluate import WindowResult
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.ports import ClusterAccess
from ess_gapdetector.windows import Window
from ess_loss.lossmath import bits_in, coalesce, runs_of_set_bits
from ess_tables.crosssync import gaps_from_bits

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
    ) -> None:
        self.clusters = clusters
        self.metrics = metrics
        self.publish = publish
        self.kafka_covers = kafka_covers
        self.coalesce_s = coalesce_s
        self.replay_timeout_s = replay_timeout_s
        self.sync_chunk_rows = sync_chunk_rows
        self.clock = clock
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
            part = {d: bits_in(b, lo, hi) for d, b in missing.items() if bits_in(b, lo, hi)}
            request = ReplayRequest(
                cluster=cluster,
                table=table,
                slots=SlotRange(
                    start=datetime.fromtimestamp(window.start_s + lo, UTC),
                    end=datetime.fromtimestamp(window.start_s + hi, UTC),
                ),
                devices=tuple(sorted(part)),
                reason="sink_loss",
                requested_by="gapdetector",
            )
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
                "replay requested for %d missing slots of %d devices: %s %s %s .. %s",
                slots,
                len(part),
                cluster,
                table,
                request.slots.start.isoformat() if request.slots else "",
                request.slots.end.isoformat() if request.slots else "",
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
        await self._sync_and_check(req.cluster, req.table, pending.window, left)

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
        gaps = [
            g
            for device, bits in sorted(missing.items())
            for g in gaps_from_bits(device, window.start_s, bits)
        ]
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
