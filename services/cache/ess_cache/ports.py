"""What the cache's loop needs of its adapters, and nothing more.

`bootstrap` hands in the real ones (OffsetCommittingConsumer, RedisStore,
Rebuilder, SitePass); the loop's unit tests hand in in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from aiokafka import ConsumerRecord, TopicPartition

from ess_cache.plan import ScriptCall
from ess_cache.rebuild import RebuildReport
from ess_cache.store import ApplyResult

Fetched = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


class Consumer(Protocol):
    """The group member (see `ess_common.kafka.OffsetCommittingConsumer`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assignment(self) -> frozenset[TopicPartition]: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 500, max_records: int | None = None
    ) -> Fetched: ...

    async def hold(
        self, partitions: Iterable[TopicPartition] | None = None, timeout_ms: int = 100
    ) -> Fetched: ...

    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    async def offsets_at_time(
        self, partitions: Sequence[TopicPartition], epoch_ms: int
    ) -> dict[TopicPartition, int]: ...

    async def committed(self, tp: TopicPartition) -> int | None: ...

    async def position(self, tp: TopicPartition) -> int: ...

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool: ...

    async def commit_next(self, next_offsets: Mapping[TopicPartition, int]) -> bool: ...


class Store(Protocol):
    """The loop's view of Redis (see `ess_cache.store.RedisStore`)."""

    async def apply(self, calls: Sequence[ScriptCall]) -> ApplyResult: ...

    async def generation(self) -> str | None: ...

    async def marker(self) -> dict[str, str]: ...

    async def close(self) -> None: ...


class Rebuild(Protocol):
    """Rebuilding the open days from SQL (see `ess_cache.rebuild.Rebuilder`)."""

    async def rebuild(self, reason: str) -> RebuildReport: ...


class SitePasses(Protocol):
    """The periodic pass over the sites (see `ess_cache.sitepass.SitePass`)."""

    async def run_once(self) -> str | None: ...
