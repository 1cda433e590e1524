"""The checkpoint of one lane: write, dead-letter, commit, in that order.

1. write the batch to the database and wait for that transaction's commit;
2. produce its poison messages and the rows the database refused to the
   dead-letter topic and wait for Kafka's acks (steps 1 and 2 are
   `ess_tables.dead_letters.write_then_dead_letter`, the path replays share);
3. commit the batch's offsets, only for partitions still owned.

A failure or a stop anywhere before step 3 leaves the offsets where they
were: the batch is read again (here, or by the partitions' next owner) and
the idempotent write absorbs it. Nothing in a batch is ever committed before
it is durable in the database or in the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition

from ess_common.model import Table
from ess_sink.metrics import SinkMetrics
from ess_sink.store import OutageListener
from ess_tables.batch import DecodedBatch
from ess_tables.dead_letters import DeadLetterSink, write_then_dead_letter
from ess_tables.writer import BatchWrite


class BatchStore(Protocol):
    """The database side (`ClusterStore`)."""

    async def write(
        self,
        tables: Mapping[Table, Sequence[tuple[Any, ...]]],
        stop: asyncio.Event,
        listener: OutageListener,
    ) -> BatchWrite: ...


class OffsetCommitter(Protocol):
    """The group member (`OffsetCommittingConsumer`)."""

    @property
    def owned(self) -> frozenset[TopicPartition]: ...

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool: ...


class CommitListener(Protocol):
    """Told the next offsets of every committed partition (`LagMonitor`)."""

    def committed(self, next_offsets: Mapping[TopicPartition, int]) -> None: ...


class Checkpoint:
    """Makes one lane's batches durable; `last_commit` is when it last committed offsets."""

    def __init__(
        self,
        *,
        store: BatchStore,
        dead_letters: DeadLetterSink,
        offsets: OffsetCommitter,
        lag: CommitListener,
        metrics: SinkMetrics,
        cluster: str,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._offsets = offsets
        self._lag = lag
        self._metrics = metrics
        self._cluster = cluster
        self.last_commit = time.monotonic()

    async def commit(
        self, batch: DecodedBatch, stop: asyncio.Event, outage: OutageListener
    ) -> bool:
        """Write, dead-letter, commit one batch; False when the offset commit failed.

        Raises `BatchAbandonedError` (nothing sent, nothing committed) when stop
        is requested while the database is down, `DeadLettersNotSentError`
        (nothing committed) while the DLQ is; `outage` hears of the outage.
        """
        started = time.perf_counter()

        async def write(tables: Mapping[Table, Sequence[tuple[Any, ...]]]) -> BatchWrite:
            return await self._store.write(tables, stop, outage)

        written = await write_then_dead_letter(batch, write, self._dead_letters, stop)
        for table, result in written.results.items():
            self._metrics.rows_written.labels(self._cluster, table).inc(result.inserted)
            self._metrics.duplicates.labels(self._cluster, table).inc(result.duplicates)
        committed = await self._offsets.commit_processed(batch.last_offsets)
        if committed:
            owned = self._offsets.owned
            self._lag.committed({tp: o + 1 for tp, o in batch.last_offsets.items() if tp in owned})
            self._metrics.batches.labels(self._cluster).inc()
            self._metrics.last_commit.labels(self._cluster).set_to_current_time()
            self._metrics.observe_freshness(self._cluster, batch.rows)
            self.last_commit = time.monotonic()
        else:
            self._metrics.commit_failures.labels(self._cluster).inc()
        self._metrics.batch_seconds.labels(self._cluster).observe(time.perf_counter() - started)
        return committed
