"""Offset look-ups shared by replays, the gap detector and `essctl`.

All of them use a group-less `AIOKafkaConsumer` (see `offset_reader`): looking
at offsets or reading a range never touches any consumer group's commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


class UnknownTopicError(LookupError):
    """The topic (or the partition) does not exist on the cluster."""


def offset_reader(bootstrap: str, client_id: str = "ess-offsets", **extra: Any) -> AIOKafkaConsumer:
    """A consumer without a group: it can assign, seek and read, and never commits."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        client_id=client_id,
        **extra,
    )


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, from fresh metadata."""
    cluster = await consumer._client.fetch_all_metadata()  # no public equivalent
    parts = cluster.partitions_for_topic(topic)
    if not parts:
        raise UnknownTopicError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def assign_topics(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Assign every partition of `topics` (replacing the assignment); returns them.

    Offset look-ups need the partitions' leaders, which the consumer tracks
    only for assigned topics: assign first, then look up.
    """
    partitions = [tp for topic in topics for tp in await partitions_of(consumer, topic)]
    consumer.assign(partitions)
    return partitions


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


async def offsets_at(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], at: datetime
) -> dict[TopicPartition, int | None]:
    """Earliest offset whose record timestamp is >= `at`, per partition (None: none is)."""
    found: Mapping[TopicPartition, Any] = await consumer.offsets_for_times(
        {tp: epoch_ms(at) for tp in partitions}
    )
    return {tp: (found[tp].offset if found.get(tp) is not None else None) for tp in partitions}


async def offset_bounds(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(beginning, end) offsets per partition."""
    begin: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return begin, end


async def earliest_retained_time(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout_ms: int = 5000
) -> datetime | None:
    """Timestamp of the oldest record Kafka still has, over partitions that lost records.

    `partitions` must be assigned (see `assign_topics`). None when no partition
    ever lost a record (every log still starts at offset 0): Kafka then holds
    everything that was ever written. A partition that lost records and is now
    empty counts as "now".
    """
    begin, end = await offset_bounds(consumer, partitions)
    trimmed = [tp for tp in partitions if begin[tp] > 0]
    if not trimmed:
        return None
    oldest: datetime | None = None
    for tp in trimmed:
        if begin[tp] >= end[tp]:
            stamp = datetime.now(UTC)
        else:
            consumer.seek(tp, begin[tp])
            batch = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=1)
            records = batch.get(tp, [])
            stamp = (
                datetime.fromtimestamp(records[0].timestamp / 1000, UTC)
                if records
                else datetime.now(UTC)
            )
        oldest = stamp if oldest is None or stamp < oldest else oldest
    return oldest


async def kafka_covers(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime
) -> bool:
    """Whether Kafka still holds every record written at or after `since`."""
    oldest = await earliest_retained_time(consumer, partitions)
    return oldest is None or oldest <= since


async def group_committed(admin: Any, group: str, topic: str) -> dict[int, int]:
    """partition -> committed offset of consumer group `group` on `topic` (`admin` is an
    `AIOKafkaAdminClient`); a partition the group never committed is absent."""
    found: Mapping[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
    return {
        tp.partition: meta.offset
        for tp, meta in found.items()
        if tp.topic == topic and meta.offset >= 0
    }
