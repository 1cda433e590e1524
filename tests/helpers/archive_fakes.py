"""In-memory stand-ins for the archive's bucket and consumer, for unit tests of its loop."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from ess_archive_layout.store import ArchiveConflict, ArchiveUnavailable, StoredObject, Versioned
from ess_common.kafka import RevokeHook


@dataclass
class MemoryStore:
    """A bucket in a dict, with an event log shared with the consumer and switchable faults."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    objects: dict[str, bytes] = field(default_factory=dict)
    down: bool = False
    fail_puts_matching: str | None = None  # puts whose path contains it fail (store away)

    def _check(self) -> None:
        if self.down:
            raise ArchiveUnavailable("the fake store is down")

    @staticmethod
    def _tag(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()

    async def get(self, path: str) -> Versioned | None:
        self._check()
        data = self.objects.get(path)
        return None if data is None else Versioned(data, self._tag(data))

    async def put(
        self, path: str, data: bytes, *, if_match: str | None = None, create: bool = False
    ) -> str | None:
        self._check()
        if self.fail_puts_matching and self.fail_puts_matching in path:
            raise ArchiveUnavailable(f"put {path} failed")
        current = self.objects.get(path)
        if create and current is not None:
            raise ArchiveConflict(path)
        if if_match is not None and (current is None or self._tag(current) != if_match):
            raise ArchiveConflict(path)
        self.objects[path] = data
        self.events.append(("put", path))
        return self._tag(data)

    async def list_objects(self, prefix: str) -> list[StoredObject]:
        self._check()
        return [
            StoredObject(p, len(d), 0.0)
            for p, d in sorted(self.objects.items())
            if p.startswith(prefix)
        ]

    async def folders(self, prefix: str | None) -> list[str]:
        self._check()
        base = prefix or ""
        found = {
            base + p[len(base) :].split("/", 1)[0]
            for p in self.objects
            if p.startswith(base) and "/" in p[len(base) :]
        }
        return sorted(found)

    async def delete(self, paths: Sequence[str]) -> None:
        self._check()
        for p in paths:
            self.objects.pop(p, None)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    timestamp: int = 0


@dataclass
class FakeMember:
    """A group member that hands out the queued fetches, then nothing; records commits."""

    events: list[tuple[str, Any]]
    fetches: list[dict[TopicPartition, list[Record]]] = field(default_factory=list)
    holds: int = 0
    hooks: list[RevokeHook] = field(default_factory=list)

    def on_revoke(self, hook: RevokeHook) -> None:
        self.hooks.append(hook)

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(tp for f in self.fetches for tp in f)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.001)
        return dict(self.fetches.pop(0)) if self.fetches else {}

    async def hold(
        self, partitions: Iterable[TopicPartition] | None = None, timeout_ms: int = 100
    ) -> dict[TopicPartition, list[Any]]:
        self.holds += 1
        await asyncio.sleep(0.005)
        return {}

    def give_back(self, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        assert not any(fetched.values())

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.events.append(("resume", None))

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool:
        self.events.append(("commit", dict(last_processed)))
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
