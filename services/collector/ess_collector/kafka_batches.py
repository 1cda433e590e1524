"""Spooled records to Kafka in one record batch per partition and round.

aiokafka's `send` costs, per message, a coroutine, a pure-Python murmur2 hash,
a future and a callback: at a thousand readings a second a good share of the
collector's CPU. The publisher hands this producer a round of records at
once; they are grouped by topic and partition (the partition `send` would
pick: aiokafka's DefaultPartitioner on the key, cached per key) and appended,
in spool order, to one BatchBuilder per partition, each queued with
`send_batch`. Idempotence and acks=all hold as for single sends (the
producer's sequence numbers cover whole batches); one future per batch
acknowledges its records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from ess_collector.spool import SpoolRecord
from ess_common.kafka import ProducerOptions, idempotent_producer


@dataclass(frozen=True, slots=True)
class SentBatch:
    ack: asyncio.Future[Any]
    seqs: tuple[int, ...]
    topic: str


class BatchingProducer:
    """An idempotent acks=all producer that sends rounds of records as batches."""

    def __init__(self, bootstrap: str, options: ProducerOptions) -> None:
        self._producer = idempotent_producer(bootstrap, options)
        self._partitioner = DefaultPartitioner()
        self._partition_of: dict[tuple[str, bytes, int], int] = {}

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()  # idempotent; closes a half-started client too

    async def send_records(self, records: Sequence[SpoolRecord], sent: list[SentBatch]) -> None:
        """Queue `records` (in order per partition); each queued batch is appended to
        `sent` as it goes, so after a KafkaError `sent` says what is on its way."""
        groups: dict[tuple[str, int], list[SpoolRecord]] = {}
        partitions: dict[str, list[int]] = {}
        for record in records:
            topic = record.topic
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            partition = self._partition(topic, record.key, partitions[topic])
            groups.setdefault((topic, partition), []).append(record)
        for (topic, partition), group in groups.items():
            batch = self._producer.create_batch()
            seqs: list[int] = []
            for record in group:
                if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                    await self._send(batch, topic, partition, seqs, sent)
                    batch, seqs = self._producer.create_batch(), []
                    batch.append(key=record.key, value=record.value, timestamp=None)
                seqs.append(record.seq)
            await self._send(batch, topic, partition, seqs, sent)

    async def _send(
        self, batch: Any, topic: str, partition: int, seqs: list[int], sent: list[SentBatch]
    ) -> None:
        ack = await self._producer.send_batch(batch, topic, partition=partition)
        sent.append(SentBatch(ack, tuple(seqs), topic))

    def _partition(self, topic: str, key: bytes, partitions: list[int]) -> int:
        cache_key = (topic, key, len(partitions))
        partition = self._partition_of.get(cache_key)
        if partition is None:
            partition = self._partitioner(key, partitions, partitions)
            self._partition_of[cache_key] = partition
        return partition
