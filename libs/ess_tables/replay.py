"""Replay: re-read part of a table's topic and upsert it, never touching group offsets.

A plan is made first (`plan_replay`): for a slot range, the start offset of
every partition of the table's topic is `offsets_for_times(range start)`; for
an offset range it is the given partition and offsets. Every span is bounded
by the partition's end offset at that moment, so a replay always finishes,
however fast the topic grows.

Executing it (`execute_replay`) reads each span with a group-less consumer,
decodes them with the sink's own `RowDecoder` (same rules as the codec),
keeps the readings whose slot lies in the range (and whose device was asked
for), and writes them with the sink's `write_rows`, so rows already present
are left as they are. A partition is finished at its bound, or once a reading
from after `range end + lateness` shows up: record timestamps are send times,
a little after the slot, and a reading spooled by the collector for longer
than `lateness` is only reached by an offset-range replay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from ess_common.codec import DecodeError
from ess_common.kafka_offsets import assign_topics, offset_bounds, offsets_at
from ess_common.model import TABLES
from ess_common.replay import ReplayRequest
from ess_common.topics import telemetry_topic
from ess_tables.rows import columns
from ess_tables.wire_rows import RowDecoder
from ess_tables.writer import write_rows

_TS_INDEX = {table: columns(table).index("ts") for table in TABLES}


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
    decoder: RowDecoder

    @classmethod
    def of(cls, request: ReplayRequest, lateness_s: float) -> _Selection:
        slots = request.slots
        return cls(
            request,
            slots.end + timedelta(seconds=lateness_s) if slots is not None else None,
            frozenset(request.devices) if request.devices is not None else None,
            RowDecoder(request.table),
        )

    def take(
        self, records: list[Any], span: PartitionSpan, counts: ReplayCounts
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """Rows to write from `records`, and whether the partition is finished."""
        rows: list[tuple[Any, ...]] = []
        slots = self.request.slots
        ts_at = _TS_INDEX[self.request.table]
        for record in records:
            if record.offset >= span.end:
                return rows, True
            counts.messages_read += 1
            try:
                row = self.decoder.decode(record.value or b"", record.key)
            except DecodeError:
                counts.undecodable += 1
                continue
            ts: datetime = row[ts_at]
            if self.read_until is not None and ts >= self.read_until:
                return rows, True
            if slots is not None and not slots.start <= ts < slots.end:
                continue
            if self.devices is not None and row[0] not in self.devices:
                continue
            rows.append(row)
        return rows, False


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
) -> ReplayCounts:
    """Read every span of `plan` and upsert the selected readings; returns the counts."""
    counts = ReplayCounts(messages_planned=plan.messages)
    pending = {TopicPartition(plan.topic, s.partition): s for s in plan.spans if s.messages}
    consumer.assign(list(pending))
    for tp, span in pending.items():
        consumer.seek(tp, span.start)
    selection = _Selection.of(plan.request, lateness_s)
    last_activity = time.monotonic()
    while pending:
        if stop is not None and stop.is_set():
            raise ReplayInterruptedError("stopping before the replay finished")
        fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
            *pending, timeout_ms=1000, max_records=batch_records
        )
        rows: list[tuple[Any, ...]] = []
        finished: set[TopicPartition] = set()
        for tp, records in fetched.items():
            if tp in pending:
                taken, done = selection.take(records, pending[tp], counts)
                rows.extend(taken)
                if done:
                    finished.add(tp)
        for tp, span in pending.items():
            if tp not in finished and await consumer.position(tp) >= span.end:
                finished.add(tp)
        await _write(conn, plan.request, rows, counts)
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
    request: ReplayRequest,
    rows: list[tuple[Any, ...]],
    counts: ReplayCounts,
) -> None:
    if rows:
        result = await write_rows(conn, request.table, rows)
        counts.rows_in_range += result.rows
        counts.rows_inserted += result.inserted
        counts.rows_present += result.duplicates
