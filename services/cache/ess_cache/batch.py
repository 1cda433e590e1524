"""A fetched Kafka batch, decoded (pure); rules are judged when it is applied.

Readings for days the cache no longer holds are counted and left out;
messages that are not readings are counted (the sinks dead-letter them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition

from ess_cache.decode import CacheReading, ReadingDecoder
from ess_common.codec import DecodeError
from ess_common.topics import table_of_topic


@dataclass
class PreparedBatch:
    readings: list[CacheReading] = field(default_factory=list)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    too_old: Counter[str] = field(default_factory=Counter)  # by table
    undecodable: Counter[str] = field(default_factory=Counter)  # by reason


def prepare_batch(
    fetched: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
    prefix: str,
    decoder: ReadingDecoder,
    accept_from: int,
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
            if reading.slot < accept_from:
                batch.too_old[table] += 1
                continue
            batch.readings.append(reading)
        batch.first_offsets.setdefault(tp, records[0].offset)
        batch.last_offsets[tp] = records[-1].offset
    return batch
