"""Turning fetched Kafka records into rows per table, poison and out-of-bounds slots apart.

A batch grows until it holds `max_rows` messages or `max_wait` has passed,
whichever comes first; past `max_wait` it keeps growing while the previous
batch is still being written (larger batches under load, low latency when
idle). Every message ends in exactly one place: a row of its table, or a
`Poison` entry (reason + detail) bound for the dead-letter topic;
`last_offsets` is what may be committed once both are durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition

from ess_common.codec import DecodeError
from ess_common.model import TABLES, Table
from ess_common.topics import table_of_topic
from ess_tables.rows import columns
from ess_tables.wire_rows import Row, RowDecoder

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
# Messages decoded between two turns of the event loop: the previous batch's
# database round trips wait for those turns, so slices keep the database busy.
DECODE_SLICE = 1000
SLOT_OUT_OF_BOUNDS = "slot_out_of_bounds"
DB_REJECTED = "db_rejected"


@dataclass(frozen=True)
class Poison:
    record: Any  # ConsumerRecord
    reason: str  # a DecodeError reason, SLOT_OUT_OF_BOUNDS or DB_REJECTED
    detail: str


@dataclass
class TableRows:
    rows: list[Row] = field(default_factory=list)
    origins: list[Record] = field(default_factory=list)  # origins[i] is the message of rows[i]


@dataclass
class DecodedBatch:
    tables: dict[Table, TableRows] = field(default_factory=dict)
    poison: list[Poison] = field(default_factory=list)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    messages: int = 0

    @property
    def rows(self) -> dict[Table, list[Row]]:
        return {table: part.rows for table, part in self.tables.items()}

    @property
    def size(self) -> int:
        return self.messages


@dataclass(frozen=True)
class SlotBounds:
    """Slots the sink accepts relative to now; anything else is dead-lettered."""

    max_future: timedelta = timedelta(seconds=300)
    max_age: timedelta = timedelta(days=30)

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        return now - self.max_age, now + self.max_future

    def violation(self, ts: datetime, now: datetime) -> str | None:
        """Why `ts` is out of bounds at `now`, or None when it is acceptable."""
        oldest, newest = self.window(now)
        if ts > newest:
            ahead = (ts - now).total_seconds()
            limit = self.max_future.total_seconds()
            return f"ts {ts.isoformat()} is {ahead:.0f}s in the future (max {limit:.0f}s)"
        if ts < oldest:
            age = (now - ts).total_seconds()
            return (
                f"ts {ts.isoformat()} is {age:.0f}s old (max {self.max_age.total_seconds():.0f}s)"
            )
        return None


_TS_INDEX = {table: columns(table).index("ts") for table in TABLES}  # where a row keeps `ts`


class BatchDecoder:
    """Decodes fetched records into a `DecodedBatch`; holds per-table decoder caches."""

    def __init__(self, prefix: str, bounds: SlotBounds) -> None:
        self.prefix = prefix
        self.bounds = bounds
        self._decoders: dict[Table, RowDecoder] = {}
        self._tables: dict[str, Table] = {}

    def add(
        self,
        batch: DecodedBatch,
        fetched: Mapping[TopicPartition, Sequence[Record]],
        now: datetime | None = None,
    ) -> None:
        now = now or datetime.now(UTC)
        oldest, newest = self.bounds.window(now)
        for tp, records in fetched.items():
            if not records:
                continue
            table = self._table_of(tp.topic)
            decoder = self._decoders.get(table) or self._decoders.setdefault(
                table, RowDecoder(table)
            )
            part = batch.tables.get(table) or batch.tables.setdefault(table, TableRows())
            ts_at = _TS_INDEX[table]
            for record in records:
                try:
                    row = decoder.decode(record.value or b"", record.key)
                except DecodeError as exc:
                    batch.poison.append(Poison(record, exc.reason, exc.detail))
                    continue
                ts = row[ts_at]
                if not oldest <= ts <= newest:
                    detail = self.bounds.violation(ts, now) or "out of bounds"
                    batch.poison.append(Poison(record, SLOT_OUT_OF_BOUNDS, detail))
                    continue
                part.rows.append(row)
                part.origins.append(record)
            batch.messages += len(records)
            batch.last_offsets[tp] = records[-1].offset

    def _table_of(self, topic: str) -> Table:
        table = self._tables.get(topic)
        if table is None:
            table = self._tables[topic] = table_of_topic(topic, self.prefix)
        return table


def decode_batch(
    fetched: Mapping[TopicPartition, Sequence[Record]],
    prefix: str,
    bounds: SlotBounds | None = None,
    now: datetime | None = None,
) -> DecodedBatch:
    """One fetch result as a batch (a convenience over `BatchDecoder`)."""
    batch = DecodedBatch()
    BatchDecoder(prefix, bounds or SlotBounds()).add(batch, fetched, now)
    return batch


class Fetcher(Protocol):
    """What `collect_batch` needs from a consumer (`OffsetCommittingConsumer` has it)."""

    async def getmany(
        self, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]: ...


async def collect_batch(
    consumer: Fetcher,
    decoder: BatchDecoder,
    max_rows: int,
    max_wait_s: float,
    *,
    stop: asyncio.Event,
    writing: Callable[[], bool] = lambda: False,
) -> DecodedBatch:
    """Fetch and decode until `max_rows` messages, or `max_wait_s` has passed and nothing
    is being written (`writing()`): while the previous batch is still in the database
    the next keeps filling, so batches grow under load and stay small when idle.
    Returns early on stop."""
    batch = DecodedBatch()
    deadline = time.monotonic() + max_wait_s
    while batch.size < max_rows and not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if not writing():
                break
            remaining = 0.05
        fetched = await consumer.getmany(
            timeout_ms=max(1, int(min(remaining, 0.5) * 1000)),
            max_records=min(max_rows - batch.size, DECODE_SLICE),
        )
        decoder.add(batch, fetched)
        await asyncio.sleep(0)  # let the batch being written take its next step
    return batch
