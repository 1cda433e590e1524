"""The cache's loop, driven with in-memory fakes of Kafka, Redis, the rebuild and the site pass.

What is pinned here is the checkpoint order: a batch's offsets are committed
only after Redis applied it; a Redis outage holds the batch (retried, not
committed, not skipped); a Redis that lost its data triggers a rebuild and a
rewind, and the batch is read again instead of being committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from ess_cache.metrics import CacheMetrics
from ess_cache.plan import ScriptCall
from ess_cache.rebuild import RebuildReport
from ess_cache.rules import AnomalyRules
from ess_cache.service import CacheService
from ess_cache.settings import CacheSettings
from ess_cache.store import ApplyResult
from ess_cache.window import Retention
from ess_common.codec import encode_reading
from ess_common.synthetic import readings, seed_fleet
from ess_common.topics import telemetry_topic

TP = TopicPartition(telemetry_topic("rack", "ess"), 0)
Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def _records(seconds: int = 3) -> list[ConsumerRecord[bytes, bytes]]:
    """Rack readings of the last few seconds, as one partition's log."""
    now = int(time.time())
    start = datetime.fromtimestamp(now - now % 60 - 60, UTC)
    racks = [r for r in readings(seed_fleet(), start, seconds) if r.table == "rack"]
    return [
        ConsumerRecord(
            topic=TP.topic,
            partition=TP.partition,
            offset=offset,
            timestamp=int(r.ts.timestamp() * 1000),
            timestamp_type=0,
            key=r.device.key.encode(),
            value=encode_reading(r),
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=(),
        )
        for offset, r in enumerate(racks)
    ]


class FakeRedis:
    """Applies batches (counting readings) after a short delay, like a pipeline in flight."""

    def __init__(self, unreachable: int = 0, data_lost: int = 0) -> None:
        self.gen: str | None = "g1"
        self.unreachable = unreachable  # the next N applies fail: Redis is away
        self.data_lost = data_lost  # the next N applies find the marker gone
        self.attempts = 0
        self.applied = 0  # readings applied so far
        self.closed = False

    async def apply(self, calls: Sequence[ScriptCall]) -> ApplyResult:
        self.attempts += 1
        await asyncio.sleep(0.01)
        if self.unreachable:
            self.unreachable -= 1
            raise RedisConnectionError("connection refused")
        if self.data_lost:
            self.data_lost -= 1
            self.gen = None
        if self.gen is None:
            return ApplyResult(generation=None)
        n = sum(call.readings for call in calls)
        self.applied += n
        return ApplyResult(generation=self.gen, applied={"rack": n})

    async def generation(self) -> str | None:
        return self.gen

    async def marker(self) -> dict[str, str]:
        return {"generation": self.gen} if self.gen else {}

    async def close(self) -> None:
        self.closed = True


class FakeLog:
    """One partition's log with a fetch position, group commits and seeks."""

    def __init__(
        self, redis: FakeRedis, records: list[ConsumerRecord[bytes, bytes]], batch: int
    ) -> None:
        self.redis = redis
        self.records = records
        self.batch = batch
        self.pos = 0
        self.committed_next: int | None = None
        self.commits: list[tuple[int, int]] = []  # (last offset, readings Redis had applied)
        self.seeks: list[int] = []
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset({TP})

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 500, max_records: int | None = None
    ) -> Fetched:
        if self.pos < len(self.records):
            chunk = self.records[self.pos : self.pos + self.batch]
            self.pos += len(chunk)
            return {TP: chunk}
        await asyncio.sleep(min(timeout_ms, 20) / 1000)
        return {}

    async def hold(
        self, partitions: Iterable[TopicPartition] | None = None, timeout_ms: int = 100
    ) -> Fetched:
        await asyncio.sleep(0)
        return {}

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        pass

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.pos = offsets[TP]
        self.seeks.append(offsets[TP])

    async def offsets_at_time(
        self, partitions: Sequence[TopicPartition], epoch_ms: int
    ) -> dict[TopicPartition, int]:
        at = next((r.offset for r in self.records if r.timestamp >= epoch_ms), len(self.records))
        return dict.fromkeys(partitions, at)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_next

    async def position(self, tp: TopicPartition) -> int:
        return self.pos

    async def commit_processed(self, last_processed: Mapping[TopicPartition, int]) -> bool:
        self.commits.append((last_processed[TP], self.redis.applied))
        self.committed_next = last_processed[TP] + 1
        return True

    async def commit_next(self, next_offsets: Mapping[TopicPartition, int]) -> bool:
        self.committed_next = next_offsets[TP]
        return True


class FakeRebuilder:
    def __init__(self, redis: FakeRedis, rewind_to: int) -> None:
        self.redis = redis
        self.rewind_to = rewind_to
        self.reasons: list[str] = []

    async def rebuild(self, reason: str) -> RebuildReport:
        self.reasons.append(reason)
        self.redis.gen = "g2"
        return RebuildReport("g2", window_from=0, rewind_to=self.rewind_to)


class FakeSitePass:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis

    async def run_once(self) -> str | None:
        return self.redis.gen


def _service(redis: FakeRedis, log: FakeLog, rebuilder: FakeRebuilder) -> CacheService:
    settings = CacheSettings(_env_file=None, cache_batch_max_wait_s=0.01)
    return CacheService(
        settings,
        metrics=CacheMetrics(CollectorRegistry()),
        rules=AnomalyRules(),
        retention=Retention(settings.ttl_by_resolution, 1, 3600),
        store=redis,
        consumer=log,
        rebuilder=rebuilder,
        sites=FakeSitePass(redis),
    )


async def _run_until(service: CacheService, done: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(10):
            while not done():
                assert not task.done(), task.result()
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _setup(
    batch: int, **redis_faults: int
) -> tuple[FakeRedis, FakeLog, FakeRebuilder, CacheService]:
    redis = FakeRedis(**redis_faults)
    log = FakeLog(redis, _records(), batch)
    rebuilder = FakeRebuilder(redis, rewind_to=log.records[0].timestamp // 1000)
    return redis, log, rebuilder, _service(redis, log, rebuilder)


def _last(log: FakeLog) -> Callable[[], bool]:
    return lambda: bool(log.commits) and log.commits[-1][0] == len(log.records) - 1


async def test_offsets_are_committed_in_order_and_only_after_redis_applied_the_batch() -> None:
    redis, log, rebuilder, service = _setup(batch=10)
    await _run_until(service, _last(log))
    n = len(log.records)
    # One commit per batch, each made when Redis already held that batch and all before it.
    assert log.commits == [(min(i + 9, n - 1), min(i + 10, n)) for i in range(0, n, 10)]
    assert redis.applied == n
    assert rebuilder.reasons == []
    assert redis.closed
    assert not log.running


async def test_a_redis_outage_holds_the_batch_and_commits_it_once_redis_is_back() -> None:
    redis, log, _, service = _setup(batch=1000, unreachable=2)
    await _run_until(service, _last(log))
    n = len(log.records)
    assert redis.attempts == 3  # two failures, then the same batch again
    assert log.commits == [(n - 1, n)]  # nothing committed while Redis was away
    assert service.health().detail["redis_up"] is True


async def test_redis_that_lost_its_data_is_rebuilt_and_the_batch_read_again_not_committed() -> None:
    redis, log, rebuilder, service = _setup(batch=10, data_lost=1)
    await _run_until(service, _last(log))
    n = len(log.records)
    assert rebuilder.reasons == ["data_gone"]
    assert log.seeks == [0]  # rewound to the first slot the rebuild did not cover
    assert log.commits[0] == (9, 10)  # the first commit is of the batch applied after the rebuild
    assert redis.applied == n
    assert service.generation == "g2"
