"""A decoded batch: fetched Kafka records as rows per table, poison and out-of-bounds apart.

Shared by every path that writes telemetry into a cluster (the sink's live
batches, replays, `essctl dlq replay`), so all of them decode with the same
rules and reject the same slots. Every message ends in exactly one place: a
row of its table, or a `Poison` entry (reason + detail) bound for the
dead-letter topic; `last_offsets` is what may be committed once both are
durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition

from ess_common.codec import DecodeError
from ess_common.model import TABLES, Table
from ess_common.topics import table_of_topic
from ess_tables.rows import columns
from ess_tables.wire_rows import Row, RowDecoder

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
SLOT_OUT_OF_BOUNDS = "slot_out_of_bounds"
DB_REJECTED = "db_rejected"


@dataclass(frozen=True)
class Poison:
    record: Any  # ConsumerRecord
    reason: str  # a DecodeError reason, SLOT_OUT_OF_BOUNDS or DB_REJECTED
    detail: str
    ts: datetime | None = None  # the slot, when the message decoded


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

    def drop(self, partitions: Iterable[TopicPartition]) -> int:
        """Forget every message of `partitions` (revoked: their next owner reads them);
        returns how many were dropped."""
        gone = {(tp.topic, tp.partition) for tp in partitions} & {
            (tp.topic, tp.partition) for tp in self.last_offsets
        }
        if not gone:
            return 0
        before = self.messages
        for part in self.tables.values():
            kept = [
                (row, origin)
                for row, origin in zip(part.rows, part.origins, strict=True)
                if (origin.topic, origin.partition) not in gone
            ]
            part.rows = [row for row, _ in kept]
            part.origins = [origin for _, origin in kept]
        self.poison = [p for p in self.poison if (p.record.topic, p.record.partition) not in gone]
        for tp in list(self.last_offsets):
            if (tp.topic, tp.partition) in gone:
                del self.last_offsets[tp]
        self.messages = sum(len(p.rows) for p in self.tables.values()) + len(self.poison)
        return before - self.messages

    def add_row(self, table: Table, row: Row, record: Record) -> None:
        part = self.tables.get(table) or self.tables.setdefault(table, TableRows())
        part.rows.append(row)
        part.origins.append(record)


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


TS_INDEX = {table: columns(table).index("ts") for table in TABLES}  # where a row keeps `ts`


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
        window = self.bounds.window(now)
        for tp, records in fetched.items():
            if not records:
                continue
            table = self.table_of(tp.topic)
            for record in records:
                taken = self.decode(table, record, now, window)
                if isinstance(taken, Poison):
                    batch.poison.append(taken)
                else:
                    batch.add_row(table, taken, record)
            batch.messages += len(records)
            batch.last_offsets[tp] = records[-1].offset

    def decode(
        self,
        table: Table,
        record: Record,
        now: datetime,
        window: tuple[datetime, datetime] | None = None,
    ) -> Row | Poison:
        """One record as a row of `table`, or as poison (undecodable, slot out of bounds)."""
        decoder = self._decoders.get(table) or self._decoders.setdefault(table, RowDecoder(table))
        try:
            row = decoder.decode(record.value or b"", record.key)
        except DecodeError as exc:
            return Poison(record, exc.reason, exc.detail)
        ts: datetime = row[TS_INDEX[table]]
        oldest, newest = window or self.bounds.window(now)
        if not oldest <= ts <= newest:
            detail = self.bounds.violation(ts, now) or "out of bounds"
            return Poison(record, SLOT_OUT_OF_BOUNDS, detail, ts)
        return row

    def table_of(self, topic: str) -> Table:
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
