"""Kafka helpers with the guarantees the pipeline needs, not aiokafka's defaults.

- `ReadingProducer`: `acks=all` + idempotence (aiokafka defaults to acks=1 and no
  idempotence), keyed by device id so a device keeps its order in a partition.
- `OffsetCommittingConsumer`: no auto-commit; the caller commits explicit
  offsets after its own write is durable, and only for partitions it still
  owns. A failed commit means "will be reprocessed", never "lost". Everything
  the services need of the group member (fetching a share of the partitions,
  holding them while a peer is down, rewinding, offset look-ups for lag) is a
  method here, so no caller reaches the aiokafka client and around that rule.
  On a rebalance, `on_revoke` hooks run before the partitions are given up,
  so the work in flight can be finished and committed instead of re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

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


class RawSender(Protocol):
    """What a writer of raw records needs (`ReadingProducer`, or a fake in tests)."""

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one record; the future resolves when Kafka acknowledged it."""


class RawProducer(RawSender, Protocol):
    """A `RawSender` whose lifecycle the caller owns."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def idempotent_producer(bootstrap: str, opts: ProducerOptions) -> AIOKafkaProducer:
    """The one way we produce: acks=all and idempotent, so a retried send never duplicates."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=opts.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=opts.linger_ms,
        compression_type=opts.compression,
        max_batch_size=opts.max_batch_bytes,
        request_timeout_ms=opts.request_timeout_ms,
    )


class ReadingProducer:
    def __init__(
        self, bootstrap: str, topic_prefix: str = "ess", options: ProducerOptions | None = None
    ) -> None:
        self._prefix = topic_prefix
        self._producer = idempotent_producer(bootstrap, options or ProducerOptions())
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


RevokeHook = Callable[[frozenset[TopicPartition]], Awaitable[None]]


class _OwnershipTracker(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers which partitions this member owns right now.

    On a revocation the partitions are first marked `revoking` and every hook
    is awaited (the group waits for this member meanwhile): a hook may finish
    and commit what it has in flight, since the partitions are still owned
    until the hooks return. Then they are no longer owned.
    """

    def __init__(self) -> None:
        self.owned: set[TopicPartition] = set()
        self.revoking: set[TopicPartition] = set()
        self.revocations = 0
        self.hooks: list[RevokeHook] = []
        self.before_hooks: Callable[[frozenset[TopicPartition]], None] = lambda tps: None

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        lost = frozenset(revoked) & self.owned
        self.revoking.update(lost)
        try:
            if lost:
                self.before_hooks(lost)
                for hook in self.hooks:
                    await hook(lost)
        finally:
            self.owned.difference_update(lost)
            self.revoking.difference_update(lost)
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
        self._consumer = AIOKafkaConsumer(
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
            await self._consumer.start()
            self._tracker.before_hooks = self.pause  # nothing more of them is fetched
            self._consumer.subscribe(self._topics, listener=self._tracker)
            self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()

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

    @property
    def revoking(self) -> frozenset[TopicPartition]:
        """Owned partitions whose revocation is in progress (the revoke hooks run)."""
        return frozenset(self._tracker.revoking)

    @property
    def revocations(self) -> int:
        return self._tracker.revocations

    def on_revoke(self, hook: RevokeHook) -> None:
        """Await `hook(partitions)` when partitions are revoked, while they are still owned:
        it may finish and commit the work in flight (commits of them still succeed);
        their fetching is paused first. Bound its time: the group waits for it."""
        self._tracker.hooks.append(hook)

    def assignment(self) -> frozenset[TopicPartition]:
        """Partitions the client has assigned right now (the group's view)."""
        return frozenset(self._consumer.assignment())

    def paused(self) -> frozenset[TopicPartition]:
        return frozenset(self._consumer.paused())

    async def getmany(
        self,
        *partitions: TopicPartition,
        timeout_ms: int = 500,
        max_records: int | None = None,
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Fetch from `partitions` (all assigned when none are named)."""
        batch: dict[
            TopicPartition, list[ConsumerRecord[bytes, bytes]]
        ] = await self._consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        return batch

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        held = [tp for tp in partitions if tp in self._consumer.assignment()]
        if held:
            self._consumer.pause(*held)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        held = [tp for tp in partitions if tp in self._consumer.assignment()]
        if held:
            self._consumer.resume(*held)

    def give_back(
        self, fetched: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
    ) -> None:
        """Seek back to the first of `fetched` records, so they are fetched again later."""
        for tp, records in fetched.items():
            if records:
                with contextlib.suppress(IllegalStateError):  # revoked meanwhile
                    self._consumer.seek(tp, records[0].offset)

    async def hold(
        self, partitions: Iterable[TopicPartition] | None = None, timeout_ms: int = 100
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Poll with `partitions` (default: all assigned) paused, so the group keeps this
        member while it cannot take records; records of partitions not held (assigned
        since, or left running) are returned, the held ones' given back."""
        held = set(self._consumer.assignment() if partitions is None else partitions)
        self.pause(held)
        fetched = await self.getmany(timeout_ms=timeout_ms)
        self.give_back({tp: r for tp, r in fetched.items() if tp in held})
        if partitions is None:
            self.pause(self._consumer.assignment())  # assigned during the poll
        return {tp: r for tp, r in fetched.items() if tp not in held}

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Move the fetch position of owned partitions (the commit is separate)."""
        for tp, offset in offsets.items():
            if tp in self._tracker.owned:
                self._consumer.seek(tp, offset)

    async def offsets_at_time(
        self, partitions: Sequence[TopicPartition], epoch_ms: int
    ) -> dict[TopicPartition, int]:
        """First offset at or after `epoch_ms` per partition (the end offset when none is)."""
        found = await self._consumer.offsets_for_times({tp: epoch_ms for tp in partitions})
        ends = await self.end_offsets(partitions)
        return {
            tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in partitions
        }

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(list(partitions))
        return ends

    async def beginning_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        begins: dict[TopicPartition, int] = await self._consumer.beginning_offsets(list(partitions))
        return begins

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of `tp` (None: never committed)."""
        offset: int | None = await self._consumer.committed(tp)
        return offset

    async def position(self, tp: TopicPartition) -> int:
        offset: int = await self._consumer.position(tp)
        return offset

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool:
        """Commit `offset + 1` for each partition still owned. False = not committed.

        Partitions lost in a rebalance are skipped: their new owner re-reads
        from the last committed offset and the idempotent write absorbs it.
        """
        return await self.commit_next({tp: off + 1 for tp, off in last_processed.items()})

    async def commit_next(self, next_offsets: Mapping[TopicPartition, int]) -> bool:
        """Commit `next_offsets` (the next offset to read) for partitions still owned.

        True only when every partition named was owned and committed.
        """
        owned = self._tracker.owned
        offsets = {tp: off for tp, off in next_offsets.items() if tp in owned}
        if not offsets:
            return not next_offsets
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit failed, batch will be reprocessed: %s", exc)
            return False
        except KafkaError as exc:
            log.warning("offset commit error (%s), batch will be reprocessed", type(exc).__name__)
            return False
        return len(offsets) == len(next_offsets)
