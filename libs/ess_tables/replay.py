"""Replay: re-read part of a table's topic and upsert it, never touching group offsets.

A plan is made first (`plan_replay`): for a slot range, the start offset of
every partition of the table's topic is `offsets_for_times(range start)`; for
an offset range it is the given partition and offsets. Every span is bounded
by the partition's end offset at that moment, so a replay always finishes,
however fast the topic grows.

Executing it (`execute_replay`) reads each span with a group-less consumer
and keeps the readings whose slot lies in the range (and whose device was
asked for). From there it is the sink's own write path
(`ess_tables.dead_letters.write_then_dead_letter`): the sink's decoder and
slot bounds (a slot the sink dead-letters is dead-lettered here too, never
inserted), `write_batch` with its bisection of refused rows, and the DLQ for
both; rows already present are left as they are. Undecodable messages of an
offset range are dead-lettered; those of a slot range are only counted (they
have no slot to place them in the range). A partition is finished at its bound, or once a reading
from after `range end + lateness` shows up: record timestamps are send times,
a little after the slot, and a reading spooled by the collector for longer
than `lateness` is only reached by an offset-range replay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from ess_common.kafka_offsets import assign_topics, offset_bounds, offsets_at
from ess_common.replay import ReplayRequest
from ess_common.topics import telemetry_topic
from ess_tables.batch import TS_INDEX, BatchDecoder, DecodedBatch, Poison, SlotBounds
from ess_tables.dead_letters import DeadLetterSink, write_then_dead_letter
from ess_tables.writer import write_batch


class ReplayError(Exception):
    """A replay that did not finish; `retriable`: the same request may succeed if tried again."""

    retriable = False


class ReplayRejectedError(ReplayError):
    """The request cannot be served as asked (e.g. a partition that does not exist)."""


class ReplayStalledError(ReplayError):
    """Kafka returned nothing for too long before the planned end was reached."""

    retriable = True


class ReplayInterruptedError(ReplayError):
    """The service is stopping; the request will be served again after a restart."""

    retriable = True


@dataclass(frozen=True)
class PartitionSpan:
    partition: int
    start: int  # first offset to read
    end: int  # exclusive bound: the partition's end offset when the plan was made

    @property
    def messages(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class ReplayPlan:
    request: ReplayRequest
    topic: str
    spans: tuple[PartitionSpan, ...]

    @property
    def messages(self) -> int:
        """Upper bound of the messages to read."""
        return sum(s.messages for s in self.spans)


@dataclass
class ReplayCounts:
    messages_planned: int = 0
    messages_read: int = 0
    rows_in_range: int = 0
    rows_inserted: int = 0
    rows_present: int = 0
    undecodable: int = 0
    dead_lettered: int = 0  # poison, slots out of the sink's bounds, rows the database refused

    def as_status_fields(self) -> dict[str, int]:
        return dict(self.__dict__)


Progress = Callable[[ReplayCounts], None]


async def plan_replay(
    consumer: AIOKafkaConsumer, request: ReplayRequest, topic_prefix: str
) -> ReplayPlan:
    topic = telemetry_topic(request.table, topic_prefix)
    partitions = await assign_topics(consumer, [topic])
    begin, end = await offset_bounds(consumer, partitions)
    if request.offsets is not None:
        rng = request.offsets
        tp = TopicPartition(topic, rng.partition)
        if tp not in end:
            raise ReplayRejectedError(f"{topic} has no partition {rng.partition}")
        start = max(rng.start_offset, begin[tp])
        stop = max(start, min(rng.end_offset, end[tp]))
        return ReplayPlan(request, topic, (PartitionSpan(rng.partition, start, stop),))
    assert request.slots is not None
    starts = await offsets_at(consumer, partitions, request.slots.start)
    spans = []
    for tp in partitions:
        first = starts[tp]
        spans.append(PartitionSpan(tp.partition, end[tp] if first is None else first, end[tp]))
    return ReplayPlan(request, topic, tuple(spans))


@dataclass(frozen=True)
class _Selection:
    """Which readings of a replay are written, and when a partition is done."""

    request: ReplayRequest
    read_until: datetime | None
    devices: frozenset[str] | None
    decoder: BatchDecoder

    @classmethod
    def of(cls, request: ReplayRequest, lateness_s: float, decoder: BatchDecoder) -> _Selection:
        slots = request.slots
        return cls(
            request,
            slots.end + timedelta(seconds=lateness_s) if slots is not None else None,
            frozenset(request.devices) if request.devices is not None else None,
            decoder,
        )

    def take(
        self, records: list[Any], span: PartitionSpan, counts: ReplayCounts, batch: DecodedBatch
    ) -> bool:
        """Adds the selected records of `records` to `batch` (rows, or poison as the sink
        would make them); True when the partition is finished."""
        slots = self.request.slots
        table = self.request.table
        now = datetime.now(UTC)
        window = self.decoder.bounds.window(now)
        for record in records:
            if record.offset >= span.end:
                return True
            counts.messages_read += 1
            taken = self.decoder.decode(table, record, now, window)
            if isinstance(taken, Poison):
                if taken.ts is None:  # undecodable: no slot to place it in a slot range
                    counts.undecodable += 1
                    if slots is None:
                        batch.poison.append(taken)
                    continue
                ts, device = taken.ts, None
            else:
                ts, device = taken[TS_INDEX[table]], taken[0]
            if self.read_until is not None and ts >= self.read_until:
                return True
            if slots is not None and not slots.start <= ts < slots.end:
                continue
            if isinstance(taken, Poison):
                batch.poison.append(taken)
                continue
            if self.devices is not None and device not in self.devices:
                continue
            batch.add_row(table, taken, record)
        return False


async def execute_replay(
    consumer: AIOKafkaConsumer,
    conn: asyncpg.Connection,
    plan: ReplayPlan,
    *,
    lateness_s: float = 120.0,
    batch_records: int = 5000,
    idle_timeout_s: float = 30.0,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    dead_letters: DeadLetterSink,
    bounds: SlotBounds,
    prefix: str,
) -> ReplayCounts:
    """Read every span of `plan` and write the selected readings through the sink's path
    (`bounds`, bisection, `dead_letters`); returns the counts."""
    counts = ReplayCounts(messages_planned=plan.messages)
    pending = {TopicPartition(plan.topic, s.partition): s for s in plan.spans if s.messages}
    consumer.assign(list(pending))
    for tp, span in pending.items():
        consumer.seek(tp, span.start)
    selection = _Selection.of(plan.request, lateness_s, BatchDecoder(prefix, bounds))
    stop = stop or asyncio.Event()
    last_activity = time.monotonic()
    while pending:
        if stop.is_set():
            raise ReplayInterruptedError("stopping before the replay finished")
        fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
            *pending, timeout_ms=1000, max_records=batch_records
        )
        batch = DecodedBatch()
        finished: set[TopicPartition] = set()
        for tp, records in fetched.items():
            if tp in pending and selection.take(records, pending[tp], counts, batch):
                finished.add(tp)
        for tp, span in pending.items():
            if tp not in finished and await consumer.position(tp) >= span.end:
                finished.add(tp)
        await _write(conn, batch, counts, dead_letters, stop)
        for tp in finished:
            consumer.pause(tp)
            del pending[tp]
        if fetched or finished:
            last_activity = time.monotonic()
        elif time.monotonic() - last_activity > idle_timeout_s:
            raise ReplayStalledError(f"no records for {idle_timeout_s:.0f}s before the planned end")
        if progress is not None:
            progress(counts)
    return counts


async def _write(
    conn: asyncpg.Connection,
    batch: DecodedBatch,
    counts: ReplayCounts,
    dead_letters: DeadLetterSink,
    stop: asyncio.Event,
) -> None:
    if not batch.tables and not batch.poison:
        return
    written = await write_then_dead_letter(batch, partial(write_batch, conn), dead_letters, stop)
    for result in written.results.values():
        counts.rows_in_range += result.rows
        counts.rows_inserted += result.inserted
        counts.rows_present += result.duplicates
    counts.dead_lettered += len(batch.poison) + len(written.rejected)
