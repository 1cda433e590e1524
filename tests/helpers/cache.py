"""Running the cache in-process for tests, against real Kafka, Redis and TimescaleDB.

Redis isolation: each test claims a logical database (1..15) with SET NX in
database 0, and uses a unique key prefix in it; cleanup deletes only keys
under that prefix, so nothing another test or person stores is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_cache.bootstrap import bootstrap
from ess_cache.service import CacheService
from ess_cache.settings import CacheSettings
from ess_cache_layout.aggregate import Bucket, decode_bucket
from ess_cache_layout.keys import parse_agg_key, table_of_series
from ess_common.kafka import ReadingProducer
from ess_common.model import Reading
from ess_common.settings import CommonSettings
from ess_tables.schema import migrate
from helpers.common import unique

CLAIM_TTL_S = 900


@dataclass(frozen=True)
class RedisNamespace:
    url: str
    prefix: str


@contextlib.asynccontextmanager
async def redis_namespace(base_url: str) -> AsyncIterator[RedisNamespace]:
    """A claimed logical database of the shared Redis and a unique prefix in it."""
    root = base_url.rsplit("/", 1)[0]
    token = unique("claim")
    admin = aioredis.Redis.from_url(f"{root}/0")
    db = None
    try:
        for attempt in range(60):
            for candidate in range(1, 16):
                claim = f"ess-test:db-claim:{candidate}"
                if await admin.set(claim, token, nx=True, ex=CLAIM_TTL_S):
                    db = candidate
                    break
            if db is not None:
                break
            await asyncio.sleep(0.5 + attempt * 0.01)
        if db is None:
            raise RuntimeError("no free Redis database to claim for this test")
        namespace = RedisNamespace(f"{root}/{db}", unique("cache"))
        try:
            yield namespace
        finally:
            client = aioredis.Redis.from_url(namespace.url)
            try:
                await delete_prefix(client, namespace.prefix)
            finally:
                await client.aclose()
            if await admin.get(f"ess-test:db-claim:{db}") == token.encode():
                await admin.delete(f"ess-test:db-claim:{db}")
    finally:
        await admin.aclose()


async def delete_prefix(client: aioredis.Redis, prefix: str) -> None:
    doomed = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for i in range(0, len(doomed), 500):
        await client.unlink(*doomed[i : i + 500])


def cache_settings(
    base: CommonSettings,
    *,
    topic_prefix: str,
    dsn: str,
    redis: RedisNamespace,
    group: str | None = None,
    **extra: object,
) -> CacheSettings:
    return CacheSettings.model_validate(
        {
            "kafka_bootstrap": base.kafka_bootstrap,
            "db_local_dsn": SecretStr(dsn),
            "redis_url": SecretStr(redis.url),
            "topic_prefix": topic_prefix,
            "cache_key_prefix": redis.prefix,
            "cache_group_id": group or unique("cache"),
            "cache_batch_max_wait_s": 0.2,
            "cache_summary_interval_s": 0.5,
            **extra,
        }
    )


def recent_start(seconds_back: int = 240) -> datetime:
    """A minute boundary a few minutes ago: inside the open day, buckets still alive."""
    now = int(time.time())
    return datetime.fromtimestamp(now - now % 60 - seconds_back, UTC)


async def migrated(dsn: str) -> str:
    """The database at `dsn` with the sink's tables (what the rebuild reads)."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


async def produce(bootstrap: str, topic_prefix: str, readings: Iterable[Reading]) -> int:
    sent = 0
    async with ReadingProducer(bootstrap, topic_prefix) as producer:
        acks = [await producer.send(r) for r in readings]
        for ack in acks:
            await ack
            sent += 1
    return sent


def counter_total(service: CacheService, counter_name: str) -> float:
    counter = getattr(service.metrics, counter_name)
    return sum(
        float(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@dataclass
class CacheRun:
    service: CacheService
    task: asyncio.Task[None]

    def total(self, counter_name: str) -> float:
        return counter_total(self.service, counter_name)

    async def wait_until(
        self, condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0
    ) -> None:
        """Poll `condition` every 0.2 s; fail if the service dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while not await condition():
            if self.task.done():
                self.task.result()
                raise AssertionError("the cache service stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout_s}s")
            await asyncio.sleep(0.2)

    async def wait_for_counts(self, timeout_s: float = 60.0, **wanted: float) -> None:
        """Wait until each named counter total reaches its wanted value."""

        async def reached() -> bool:
            return all(self.total(name) >= n for name, n in wanted.items())

        await self.wait_until(reached, f"counters {wanted}", timeout_s)


@contextlib.asynccontextmanager
async def running_cache(settings: CacheSettings) -> AsyncIterator[CacheRun]:
    """The cache service running in the background; stopped cleanly on exit."""
    service = bootstrap(settings, CollectorRegistry())
    stop = asyncio.Event()
    run = CacheRun(service, asyncio.create_task(service.run(stop)))
    try:
        yield run
    finally:
        stop.set()
        await asyncio.wait_for(run.task, 60)


async def snapshot(url: str, prefix: str) -> dict[str, Any]:
    """Everything the cache computed: buckets (decoded), bitmaps, latest values, devices."""
    client = aioredis.Redis.from_url(url)
    try:
        out: dict[str, Any] = {}
        async for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
            key = raw.decode()
            kind = key[len(prefix) + 1 :].split(":", 1)[0]
            if kind == "agg":
                _, series, _ = parse_agg_key(key, prefix)
                blob = await client.get(key)
                assert isinstance(blob, bytes)
                out[key] = decode_bucket(table_of_series(series), blob)
            elif kind == "seen":
                out[key] = await client.get(key)
            elif kind == "latest":
                payload = await client.get(key)
                assert isinstance(payload, bytes)
                doc = orjson.loads(payload)
                out[key] = (doc["ts"], doc["values"])
            elif kind == "devices":
                out[key] = await client.zrange(key, 0, -1, withscores=True)
            elif kind == "anomalies":
                out[key] = await client.xlen(key)
        return out
    finally:
        await client.aclose()


def buckets_of(snap: dict[str, Any], prefix: str) -> dict[tuple[str, str, int], Bucket]:
    return {parse_agg_key(k, prefix): v for k, v in snap.items() if k.startswith(f"{prefix}:agg:")}


async def essctl_cache(env: dict[str, str], *args: str) -> dict[str, Any]:
    """`essctl cache ARGS` as a process: its JSON document, or `{"text": stdout}`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ess_ctl",
        "cache",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    if "--json" in args:
        doc: dict[str, Any] = orjson.loads(out)
        return doc
    return {"text": out.decode()}


def rebuildable(snap: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Everything but the anomaly feeds, which a flush loses (docs/cache.md)."""
    return {k: v for k, v in snap.items() if not k.startswith(f"{prefix}:anomalies:")}
