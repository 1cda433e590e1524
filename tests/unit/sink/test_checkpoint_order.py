"""The checkpoint order, with in-memory fakes of the store, the DLQ and the consumer:
the database commit, then the dead letters' acks, then the offset commit; nothing is
committed when the write is abandoned or the dead letters are not acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from ess_common.model import Table
from ess_sink.checkpoint import Checkpoint
from ess_sink.metrics import SinkMetrics
from ess_sink.store import BatchAbandonedError, OutageListener
from ess_tables.batch import DB_REJECTED, DecodedBatch, Poison, TableRows
from ess_tables.dead_letters import DeadLettersNotSentError
from ess_tables.writer import BatchWrite, RejectedRow, WriteResult

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
TOPIC = "unit.telemetry.rack"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
CLUSTER = "local"


def _record(partition: int, offset: int) -> Record:
    record: Record = ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])
    return record


def _batch() -> DecodedBatch:
    """Two rows from P0 (offsets 10, 12), one from P1 (offset 5), poison at P0 offset 11."""
    origins = [_record(0, 10), _record(0, 12), _record(1, 5)]
    return DecodedBatch(
        tables={"rack": TableRows(rows=[("r", 10), ("r", 12), ("r", 5)], origins=origins)},
        poison=[Poison(_record(0, 11), "not_json", "broken")],
        last_offsets={P0: 12, P1: 5},
        messages=4,
    )


class _Journal(list[tuple[str, Any]]):
    def steps(self) -> list[str]:
        return [step for step, _ in self]


class _Store:
    """Commits the batch in the database when `release` is set (at once by default)."""

    def __init__(self, journal: _Journal, rejected: Sequence[RejectedRow] = ()) -> None:
        self.journal = journal
        self.rejected = list(rejected)
        self.release = asyncio.Event()
        self.release.set()
        self.abandon = False

    async def write(
        self,
        tables: Mapping[Table, Sequence[tuple[Any, ...]]],
        stop: asyncio.Event,
        listener: OutageListener,
    ) -> BatchWrite:
        self.journal.append(("db_write", {t: list(rows) for t, rows in tables.items()}))
        await self.release.wait()
        if self.abandon:
            listener.database_down()
            raise BatchAbandonedError("database unavailable (connection)")
        self.journal.append(("db_commit", None))
        results = {t: WriteResult(t, len(rows), len(rows) - 1) for t, rows in tables.items()}
        return BatchWrite(results, self.rejected)


class _DeadLetters:
    """Acknowledges when `acked` is set (at once by default); `fail` raises instead."""

    def __init__(self, journal: _Journal) -> None:
        self.journal = journal
        self.acked = asyncio.Event()
        self.acked.set()
        self.fail = False

    async def send(self, poison: Sequence[Poison], stop: asyncio.Event) -> None:
        self.journal.append(("dlq_send", [(p.record.offset, p.reason) for p in poison]))
        await self.acked.wait()
        if self.fail:  # `DeadLetters` retries until stop, then raises this
            raise DeadLettersNotSentError("stopping with the DLQ unreachable")
        self.journal.append(("dlq_acked", None))


class _Consumer:
    """`OffsetCommittingConsumer`'s contract: commits owned partitions only; True when
    every partition named was owned."""

    def __init__(self, journal: _Journal, owned: set[TopicPartition]) -> None:
        self.journal = journal
        self._owned = owned

    @property
    def owned(self) -> frozenset[TopicPartition]:
        return frozenset(self._owned)

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool:
        offsets = {tp: o + 1 for tp, o in last_processed.items() if tp in self._owned}
        self.journal.append(("offsets_commit", offsets))
        return len(offsets) == len(last_processed)


class _Lag:
    def __init__(self) -> None:
        self.told: list[dict[TopicPartition, int]] = []

    def committed(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        self.told.append(dict(next_offsets))


class _Outage:
    def __init__(self) -> None:
        self.down = 0

    def database_down(self) -> None:
        self.down += 1

    def database_up(self) -> None:
        pass


class _Rig:
    def __init__(self, *, owned: set[TopicPartition] | None = None, **store: Any) -> None:
        self.journal = _Journal()
        self.store = _Store(self.journal, **store)
        self.dlq = _DeadLetters(self.journal)
        self.consumer = _Consumer(self.journal, {P0, P1} if owned is None else owned)
        self.lag = _Lag()
        self.registry = CollectorRegistry()
        self.outage = _Outage()
        self.checkpoint = Checkpoint(
            store=self.store,
            dead_letters=self.dlq,
            offsets=self.consumer,
            lag=self.lag,
            metrics=SinkMetrics(self.registry),
            cluster=CLUSTER,
        )

    async def commit(self, batch: DecodedBatch) -> bool:
        return await self.checkpoint.commit(batch, asyncio.Event(), self.outage)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"cluster": CLUSTER, **labels}) or 0.0


async def test_database_commit_then_dead_letters_then_offsets() -> None:
    rig = _Rig()
    started = rig.checkpoint.last_commit
    assert await rig.commit(_batch())
    assert rig.journal.steps() == [
        "db_write",
        "db_commit",
        "dlq_send",
        "dlq_acked",
        "offsets_commit",
    ]
    assert rig.journal[0][1] == {"rack": [("r", 10), ("r", 12), ("r", 5)]}
    assert rig.journal[2][1] == [(11, "not_json")]
    assert rig.journal[4][1] == {P0: 13, P1: 6}
    assert rig.lag.told == [{P0: 13, P1: 6}]
    assert rig.checkpoint.last_commit > started
    assert rig.metric("ess_sink_batches_total") == 1
    assert rig.metric("ess_sink_rows_written_total", table="rack") == 2
    assert rig.metric("ess_sink_duplicates_skipped_total", table="rack") == 1
    assert rig.metric("ess_sink_commit_failures_total") == 0
    assert rig.metric("ess_sink_batch_duration_seconds_count") == 1
    assert rig.metric("ess_sink_last_commit_timestamp_seconds") > 0


async def test_each_step_waits_for_the_one_before_to_be_durable() -> None:
    rig = _Rig()
    rig.store.release.clear()
    rig.dlq.acked.clear()
    task = asyncio.create_task(rig.commit(_batch()))
    await asyncio.sleep(0.01)
    assert rig.journal.steps() == ["db_write"]  # the database has not committed yet
    rig.store.release.set()
    await asyncio.sleep(0.01)
    assert rig.journal.steps() == ["db_write", "db_commit", "dlq_send"]  # no acks yet
    assert rig.lag.told == []
    rig.dlq.acked.set()
    assert await task
    assert rig.journal.steps()[-2:] == ["dlq_acked", "offsets_commit"]


async def test_rows_the_database_refused_are_dead_lettered_before_the_commit() -> None:
    refused = RejectedRow("rack", 1, ValueError("value out of int16 range"))
    rig = _Rig(rejected=[refused])
    assert await rig.commit(_batch())
    step, sent = rig.journal[2]
    assert step == "dlq_send"
    assert sent == [(11, "not_json"), (12, DB_REJECTED)]  # origin of rows[1]: P0 offset 12
    assert rig.journal.steps().index("dlq_acked") < rig.journal.steps().index("offsets_commit")


async def test_an_abandoned_write_sends_nothing_and_commits_nothing() -> None:
    rig = _Rig()
    rig.store.abandon = True
    started = rig.checkpoint.last_commit
    with pytest.raises(BatchAbandonedError):
        await rig.commit(_batch())
    assert rig.journal.steps() == ["db_write"]
    assert rig.outage.down == 1  # the lane heard of the outage (it pauses its partitions)
    assert rig.lag.told == []
    assert rig.checkpoint.last_commit == started
    assert rig.metric("ess_sink_batches_total") == 0
    assert rig.metric("ess_sink_rows_written_total", table="rack") == 0


async def test_dead_letters_not_acknowledged_leave_the_offsets_uncommitted() -> None:
    rig = _Rig()
    rig.dlq.fail = True
    with pytest.raises(DeadLettersNotSentError):
        await rig.commit(_batch())
    assert "offsets_commit" not in rig.journal.steps()
    assert rig.lag.told == []
    assert rig.metric("ess_sink_batches_total") == 0


async def test_a_partition_revoked_meanwhile_is_not_committed_and_counts_as_a_failure() -> None:
    rig = _Rig(owned={P0})
    started = rig.checkpoint.last_commit
    assert not await rig.commit(_batch())
    assert rig.journal[-1] == ("offsets_commit", {P0: 13})  # P1 belongs to another member now
    assert rig.lag.told == []
    assert rig.checkpoint.last_commit == started  # /healthz must not think this lane is live
    assert rig.metric("ess_sink_commit_failures_total") == 1
    assert rig.metric("ess_sink_batches_total") == 0
    assert rig.metric("ess_sink_batch_duration_seconds_count") == 1
