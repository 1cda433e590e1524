"""A fetched Kafka batch, decoded (pure); rules are judged when it is applied.

Readings for days the cache no longer holds are counted and left out, and so
are readings outside the sinks' slot bounds (`ESS_SINK_MAX_FUTURE_S`,
`ESS_SINK_MAX_AGE_S`, `ess_tables.batch.SlotBounds`): the sinks dead-letter
those, so counting them would make the cache differ from SQL, and one slot
from a device whose clock jumped ahead would pin its latest reading (`ZADD GT`)
in the future. Messages that are not readings are counted (the sinks
dead-letter them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import ConsumerRecord, TopicPartition

from ess_cache.decode import CacheReading, ReadingDecoder
from ess_common.codec import DecodeError
from ess_common.topics import table_of_topic
from ess_tables.batch import SlotBounds


@dataclass(frozen=True)
class Accepted:
    """Slots a batch keeps: from the first open day (`first`), within the sinks' bounds."""

    first: int
    oldest: int
    newest: int

    @classmethod
    def at(cls, now: float, first_open: int, bounds: SlotBounds) -> Accepted:
        oldest, newest = bounds.window(datetime.fromtimestamp(now, UTC))
        return cls(first_open, int(oldest.timestamp()), int(newest.timestamp()))


@dataclass
class PreparedBatch:
    readings: list[CacheReading] = field(default_factory=list)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    too_old: Counter[str] = field(default_factory=Counter)  # by table
    out_of_bounds: Counter[str] = field(default_factory=Counter)  # by table
    undecodable: Counter[str] = field(default_factory=Counter)  # by reason


def prepare_batch(
    fetched: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
    prefix: str,
    decoder: ReadingDecoder,
    accept: Accepted,
    into: PreparedBatch | None = None,
) -> PreparedBatch:
    """Decode `fetched` (into `into`, if given, so a batch can be decoded in slices)."""
    batch = PreparedBatch() if into is None else into
    for tp, records in fetched.items():
        if not records:
            continue
        table = table_of_topic(tp.topic, prefix)
        for record in records:
            try:
                reading = decoder.decode(record.value or b"", record.key, table)
            except DecodeError as exc:
                batch.undecodable[exc.reason] += 1
                continue
            if reading.slot < accept.first:
                batch.too_old[table] += 1
                continue
            if not accept.oldest <= reading.slot <= accept.newest:
                batch.out_of_bounds[table] += 1
                continue
            batch.readings.append(reading)
        batch.first_offsets.setdefault(tp, records[0].offset)
        batch.last_offsets[tp] = records[-1].offset
    return batch
