"""Turning a fetched Kafka batch into rows per table, poison messages apart."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from ess_common.codec import DecodeError, decode_reading
from ess_common.model import Table
from ess_common.topics import table_of_topic
from ess_sink.rows import to_row


@dataclass(frozen=True)
class Poison:
    record: Any  # ConsumerRecord
    reason: str
    detail: str


@dataclass
class DecodedBatch:
    rows: dict[Table, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    poison: list[Poison] = field(default_factory=list)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(r) for r in self.rows.values()) + len(self.poison)


def decode_batch(
    fetched: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]], prefix: str
) -> DecodedBatch:
    batch = DecodedBatch()
    for tp, records in fetched.items():
        if not records:
            continue
        table = table_of_topic(tp.topic, prefix)
        for record in records:
            try:
                reading = decode_reading(record.value or b"", record.key, expect_table=table)
            except DecodeError as exc:
                batch.poison.append(Poison(record, exc.reason, exc.detail))
                continue
            batch.rows[table].append(to_row(reading))
        batch.last_offsets[tp] = records[-1].offset
    return batch
