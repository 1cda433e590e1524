"""The shared producer and consumer against the real broker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ess_common.codec import decode_reading
from ess_common.kafka import OffsetCommittingConsumer, ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from helpers.common import TopicFactory, unique

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def test_producer_keys_by_device_so_each_device_stays_in_one_partition(
    settings: CommonSettings, make_topic: TopicFactory
) -> None:
    topic = await make_topic(partitions=3)
    sent = [r for r in readings(seed_fleet(), T0, seconds=5) if r.table == "rack"]
    async with ReadingProducer(settings.kafka_bootstrap) as producer:
        acks = [await producer.send(r, topic=topic) for r in sent]
        metas = [await a for a in acks]
    partition_of: dict[str, set[int]] = {}
    for reading, meta in zip(sent, metas, strict=True):
        partition_of.setdefault(reading.device.key, set()).add(meta.partition)
    assert all(len(p) == 1 for p in partition_of.values())
    assert len({p for ps in partition_of.values() for p in ps}) > 1  # spread over partitions

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got: list[ConsumerRecord[bytes, bytes]] = []
        while len(got) < len(sent):
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, "messages did not arrive"
            got.extend(rec for recs in batch.values() for rec in recs)
    finally:
        await consumer.stop()
    decoded = [decode_reading(rec.value, rec.key) for rec in got]
    assert sorted(decoded, key=lambda r: (r.device.key, r.ts)) == sorted(
        sent, key=lambda r: (r.device.key, r.ts)
    )


async def test_producer_is_idempotent_with_acks_all(
    settings: CommonSettings, make_topic: TopicFactory
) -> None:
    topic = await make_topic(partitions=1)
    async with ReadingProducer(settings.kafka_bootstrap) as producer:
        await (await producer.send(next(iter(readings(seed_fleet(), T0, 1))), topic=topic))
        inner = producer._producer
        # aiokafka's defaults are acks=1 without idempotence; ours must be stronger.
        assert inner._sender._acks == -1
        # The broker handed out a producer id: idempotent sequencing is in force.
        assert inner._txn_manager is not None
        assert inner._txn_manager.producer_id >= 0


async def test_consumer_commits_exactly_the_offsets_it_is_told(
    settings: CommonSettings, make_topic: TopicFactory
) -> None:
    topic = await make_topic(partitions=1)
    group = unique("g")
    tp = TopicPartition(topic, 0)
    async with ReadingProducer(settings.kafka_bootstrap) as producer:
        for r in list(readings(seed_fleet(), T0, seconds=1))[:10]:
            await (await producer.send(r, topic=topic))

    async with OffsetCommittingConsumer(settings.kafka_bootstrap, group, [topic]) as first:
        records: list[ConsumerRecord[bytes, bytes]] = []
        while len(records) < 10:
            batch = await first.getmany(timeout_ms=2000)
            records.extend(batch.get(tp, []))
        assert await first.commit_processed({tp: records[3].offset})  # processed 0..3
        committed = await first.committed(tp)
    assert committed == 4

    async with OffsetCommittingConsumer(settings.kafka_bootstrap, group, [topic]) as second:
        batch = {}
        while not batch:
            batch = await second.getmany(timeout_ms=2000)
        assert batch[tp][0].offset == 4  # resumes after the last committed record


async def test_a_partition_another_member_owns_is_never_committed(
    settings: CommonSettings, make_topic: TopicFactory
) -> None:
    """Two members of one group share a subscribed topic: neither commits the other's
    partition (the broker would accept it from any member of the generation)."""
    topic = await make_topic(partitions=2)
    group = unique("g")
    both = {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    extra: dict[str, Any] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    async with (
        OffsetCommittingConsumer(settings.kafka_bootstrap, group, [topic], **extra) as first,
        OffsetCommittingConsumer(settings.kafka_bootstrap, group, [topic], **extra) as second,
    ):
        deadline = time.monotonic() + 60
        while not (len(first.owned) == 1 and len(second.owned) == 1):
            assert time.monotonic() < deadline, (first.owned, second.owned)
            await asyncio.gather(first.getmany(timeout_ms=200), second.getmany(timeout_ms=200))
        (mine,) = first.owned
        (theirs,) = second.owned
        assert {mine, theirs} == both
        assert not await first.commit_processed({theirs: 5})
        assert not await first.commit_processed({mine: 0, theirs: 5})  # partly owned: False
        assert await second.committed(theirs) is None  # nothing was committed for it
        assert await first.committed(mine) == 1
