"""A lane: one ordered write pipeline over a fixed share of the partitions.

A sink runs `ESS_SINK_DB_CONNECTIONS` lanes; lane i owns the partitions with
`partition % lanes == i`, has its own database connection, and fetches,
writes and commits only those. Lanes never share a partition, so:

- a device (one key, one partition) is always written by the same lane, in
  offset order: "first write wins" picks the same row in every cluster;
- two lanes never insert the same key at once (no lock waits, no deadlocks);
- each lane commits its own offsets after its own transaction, in order.

Two lanes keep the database busy while Python decodes and encodes the next
batch (measured: about +50 % rows/s on two cores).

Inside a lane, at most two batches are in memory: while one is written the
next is fetched and decoded. On a database outage the lane pauses its
partitions, keeps its group membership alive with empty polls, retries (see
`ClusterStore`), and resumes them when the database is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import TopicPartition

from ess_common.kafka import OffsetCommittingConsumer
from ess_sink.consume import BatchDecoder, DecodedBatch, Record, collect_batch
from ess_sink.store import BatchAbandonedError, ClusterStore

log = logging.getLogger(__name__)

# write + dead-letter + commit one batch of a lane (`SinkService.checkpoint`)
Checkpoint = Callable[[DecodedBatch, "Lane", asyncio.Event], Coroutine[Any, Any, None]]


def lane_of(tp: TopicPartition, lanes: int) -> int:
    return int(tp.partition) % lanes


class Lane:
    def __init__(
        self,
        index: int,
        lanes: int,
        consumer: OffsetCommittingConsumer,
        store: ClusterStore,
        on_pause_change: Callable[[], None],
    ) -> None:
        self.index = index
        self.lanes = lanes
        self.consumer = consumer
        self.store = store
        self.paused = False
        self.last_commit = time.monotonic()  # set by the checkpoint after an offset commit
        self._on_pause_change = on_pause_change
        self._inflight: asyncio.Task[None] | None = None  # the batch being written

    def partitions(self) -> list[TopicPartition]:
        """This lane's share of the current assignment."""
        return [tp for tp in self.consumer.assignment() if lane_of(tp, self.lanes) == self.index]

    # -- what `collect_batch` and `ClusterStore` call ---------------------------------------

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
        self._on_pause_change()

    def database_up(self) -> None:
        self.consumer.resume(self.partitions())
        self.paused = False
        self._on_pause_change()

    # -- the loop -------------------------------------------------------------------------

    async def run(
        self,
        stop: asyncio.Event,
        decoder: BatchDecoder,
        checkpoint: Checkpoint,
        max_rows: int,
        max_wait_s: float,
    ) -> None:
        """Collect, write, commit, until stop; then finish (or abandon) the batch in hand."""
        try:
            while not stop.is_set():
                batch = await collect_batch(
                    self, decoder, max_rows, max_wait_s, stop=stop, writing=self._writing
                )
                if self._inflight is not None and not await self._settle(self._inflight):
                    return
                self._inflight = None
                if batch.last_offsets:
                    self._inflight = asyncio.create_task(checkpoint(batch, self, stop))
            if self._inflight is not None:
                await self._settle(self._inflight)
        finally:
            if self._inflight is not None and not self._inflight.done():
                self._inflight.cancel()
                await asyncio.wait({self._inflight})
            self._inflight = None

    def _writing(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    async def _settle(self, task: asyncio.Task[None]) -> bool:
        """Wait for the batch being written; False if it was abandoned."""
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if self.paused and not task.done():
                await self._keep_membership()
        try:
            task.result()
        except BatchAbandonedError as exc:
            log.warning(
                "lane %d: stopping with the database down: batch abandoned, not committed (%s)",
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
