"""A lane: one ordered write pipeline over a fixed share of the partitions.

A sink runs `ESS_SINK_DB_CONNECTIONS` lanes; lane i owns the partitions with
`partition % lanes == i`, has its own database connection, and fetches,
writes and commits only those. Lanes never share a partition, so:

- a device (one key, one partition) is always written by the same lane, in
  offset order: "first write wins" picks the same row in every cluster;
- two lanes never insert the same key at once (no lock waits, no deadlocks);
- each lane commits its own offsets after its own transaction, in order,
  through its own `Checkpoint` (`ess_sink.checkpoint`: write, dead-letter,
  commit).

Two lanes keep the database busy while Python decodes and encodes the next
batch (measured: about +50 % rows/s on two cores).

Inside a lane, at most two batches are in memory: while one is written the
next is fetched and decoded.

On a rebalance (`partitions_revoked`, a revoke hook of the consumer, awaited
before the partitions are given up) the lane drops the revoked partitions'
messages from the batch it is collecting (not written: their next owner
reads them from the committed offset) and waits, up to
`ESS_SINK_REVOKE_WAIT_S`, for the batch in flight, whose offsets are then
committed while still owned. So a rebalance re-writes nothing, unless that
wait runs out (a slow or absent database): then the batch is abandoned to
the new owner, counted (`ess_sink_revoked_batches_total{outcome="abandoned"}`).

On a database outage the lane pauses its partitions, keeps its group
membership alive with empty polls, retries (see `ClusterStore`), and resumes
them when the database is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import TopicPartition
from prometheus_client import Gauge

from ess_common.kafka import OffsetCommittingConsumer
from ess_sink.checkpoint import Checkpoint
from ess_sink.consume import collect_batch
from ess_sink.store import BatchAbandonedError
from ess_tables.batch import BatchDecoder, DecodedBatch, Record
from ess_tables.dead_letters import DeadLettersNotSentError

log = logging.getLogger(__name__)


def lane_of(tp: TopicPartition, lanes: int) -> int:
    return int(tp.partition) % lanes


class Lane:
    def __init__(
        self,
        index: int,
        lanes: int,
        *,
        consumer: OffsetCommittingConsumer,
        checkpoint: Checkpoint,
        decoder: BatchDecoder,
        max_rows: int,
        max_wait_s: float,
        paused_partitions: Gauge,
        count_revoked_batch: Callable[[str], None] = lambda outcome: None,
        revoke_wait_s: float = 10.0,
    ) -> None:
        """`paused_partitions`: the gauge (of this sink's cluster) of paused partitions;
        `count_revoked_batch(outcome)`: a batch was in flight at a revocation and was
        `finished` (committed) or `abandoned` (still writing after `revoke_wait_s`)."""
        self.index = index
        self.lanes = lanes
        self.consumer = consumer
        self.checkpoint = checkpoint
        self.paused = False
        self._decoder = decoder
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._paused_partitions = paused_partitions
        self._inflight: asyncio.Task[bool] | None = None  # the batch being written
        self._inflight_partitions: frozenset[TopicPartition] = frozenset()
        self._collecting: DecodedBatch | None = None  # the batch being fetched
        self._count_revoked_batch = count_revoked_batch
        self._revoke_wait_s = revoke_wait_s

    @property
    def last_commit(self) -> float:
        """`time.monotonic()` of this lane's last offset commit (or of its start)."""
        return self.checkpoint.last_commit

    def partitions(self) -> list[TopicPartition]:
        """This lane's share of the current assignment."""
        return [tp for tp in self.consumer.assignment() if lane_of(tp, self.lanes) == self.index]

    # -- what `collect_batch` and `ClusterStore` (through the checkpoint) call ---------------

    async def getmany(
        self, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        partitions = self.partitions()
        if partitions:
            fetched: dict[TopicPartition, list[Record]] = await self.consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
            return fetched
        if self.index or self.consumer.assignment():  # another lane polls for the member
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        # No partition at all: poll anyway, or the group drops an idle member after
        # max.poll.interval; records of partitions assigned meanwhile that belong to
        # another lane are given back (never written here: lanes must not share).
        fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        mine = {tp: r for tp, r in fetched.items() if lane_of(tp, self.lanes) == self.index}
        self.consumer.give_back({tp: r for tp, r in fetched.items() if tp not in mine})
        return mine

    def database_down(self) -> None:
        self.consumer.pause(self.partitions())
        self.paused = True
        self._paused_partitions.set(len(self.consumer.paused()))

    def database_up(self) -> None:
        self.consumer.resume(self.partitions())
        self.paused = False
        self._paused_partitions.set(len(self.consumer.paused()))

    async def partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        """Drop the revoked partitions from the batch being collected; finish (bounded) the
        batch in flight, so its offsets are committed while the partitions are owned."""
        mine = frozenset(tp for tp in revoked if lane_of(tp, self.lanes) == self.index)
        if not mine:
            return
        if self._collecting is not None:
            self._collecting.drop(mine)
        task = self._inflight
        if task is None or task.done() or not mine & self._inflight_partitions:
            return
        done, _ = await asyncio.wait({task}, timeout=self._revoke_wait_s)
        outcome = "finished" if done else "abandoned"
        self._count_revoked_batch(outcome)
        if not done:
            log.warning(
                "lane %d: partitions revoked while a batch was still being written after"
                " %.0fs: its next owner writes it again",
                self.index,
                self._revoke_wait_s,
            )

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Collect, write, commit, until stop; then finish (or abandon) the batch in hand."""
        try:
            while not stop.is_set():
                self._collecting = DecodedBatch()
                batch = await collect_batch(
                    self,
                    self._decoder,
                    self._max_rows,
                    self._max_wait_s,
                    stop=stop,
                    writing=self._writing,
                    batch=self._collecting,
                )
                if self._inflight is not None and not await self._settle(self._inflight):
                    return
                self._inflight = None
                # fetched before a revocation paused them, or revoked while we waited
                batch.drop(
                    tp
                    for tp in batch.last_offsets
                    if tp not in self.consumer.owned or tp in self.consumer.revoking
                )
                self._collecting = None
                if batch.last_offsets:
                    self._inflight_partitions = frozenset(batch.last_offsets)
                    self._inflight = asyncio.create_task(self.checkpoint.commit(batch, stop, self))
            if self._inflight is not None:
                await self._settle(self._inflight)
        finally:
            if self._inflight is not None and not self._inflight.done():
                self._inflight.cancel()
                await asyncio.wait({self._inflight})
            self._inflight = None

    def _writing(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    async def _settle(self, task: asyncio.Task[bool]) -> bool:
        """Wait for the batch being written; False if it was abandoned."""
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if self.paused and not task.done():
                await self._keep_membership()
        try:
            task.result()
        except (BatchAbandonedError, DeadLettersNotSentError) as exc:
            log.warning(
                "lane %d: stopping with the database or the DLQ down:"
                " batch abandoned, not committed (%s)",
                self.index,
                exc,
            )
            return False
        return True

    async def _keep_membership(self) -> None:
        """Poll while paused (or the group drops us after max.poll.interval); give back records."""
        self.consumer.pause(self.partitions())
        fetched = await self.getmany(timeout_ms=100)
        self.consumer.give_back(fetched)  # from partitions assigned since the pause
