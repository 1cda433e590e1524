"""Kafka helpers with the guarantees the pipeline needs, not aiokafka's defaults.

- `ReadingProducer`: `acks=all` + idempotence (aiokafka defaults to acks=1 and no
  idempotence), keyed by device id so a device keeps its order in a partition.
- `OffsetCommittingConsumer`: no auto-commit; the caller commits explicit
  offsets after its own write is durable, and only for partitions it still
  owns. A failed commit means "will be reprocessed", never "lost".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from ess_common.codec import encode_reading
from ess_common.model import Reading
from ess_common.topics import telemetry_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerOptions:
    linger_ms: int = 50
    compression: str | None = "lz4"
    max_batch_bytes: int = 256 * 1024
    request_timeout_ms: int = 30_000
    client_id: str = "ess"


class ReadingProducer:
    def __init__(
        self, bootstrap: str, topic_prefix: str = "ess", options: ProducerOptions | None = None
    ) -> None:
        opts = options or ProducerOptions()
        self._prefix = topic_prefix
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=opts.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=opts.linger_ms,
            compression_type=opts.compression,
            max_batch_size=opts.max_batch_bytes,
            request_timeout_ms=opts.request_timeout_ms,
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        # Always close the client: a start that failed leaves it half open.
        # aiokafka's stop() is idempotent.
        self._started = False
        await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, reading: Reading, topic: str | None = None) -> asyncio.Future[Any]:
        """Queue one reading; the returned future resolves when Kafka acknowledged it."""
        fut: asyncio.Future[Any] = await self._producer.send(
            topic or telemetry_topic(reading.table, self._prefix),
            value=encode_reading(reading),
            key=reading.device.key.encode(),
        )
        return fut

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key, headers=list(headers) if headers else None
        )
        return fut

    async def flush(self) -> None:
        await self._producer.flush()


class _OwnershipTracker(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers which partitions this member owns right now."""

    def __init__(self) -> None:
        self.owned: set[TopicPartition] = set()
        self.revocations = 0

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.owned.difference_update(revoked)
        self.revocations += 1

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.owned.update(assigned)


class OffsetCommittingConsumer:
    """A group consumer that commits only what the caller says it has made durable."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        client_id: str = "ess",
        **extra: Any,
    ) -> None:
        self._topics = list(topics)
        self._tracker = _OwnershipTracker()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **extra,
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self.consumer.start()
            self.consumer.subscribe(self._topics, listener=self._tracker)
            self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def owned(self) -> frozenset[TopicPartition]:
        return frozenset(self._tracker.owned)

    async def getmany(
        self, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batch: dict[
            TopicPartition, list[ConsumerRecord[bytes, bytes]]
        ] = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return batch

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool:
        """Commit `offset + 1` for each partition still owned. False = not committed.

        Partitions lost in a rebalance are skipped: their new owner re-reads
        from the last committed offset and the idempotent write absorbs it.
        """
        owned = self._tracker.owned
        offsets = {tp: off + 1 for tp, off in last_processed.items() if tp in owned}
        if not offsets:
            return not last_processed
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit failed, batch will be reprocessed: %s", exc)
            return False
        except KafkaError as exc:
            log.warning("offset commit error (%s), batch will be reprocessed", type(exc).__name__)
            return False
        return len(offsets) == len(last_processed)
