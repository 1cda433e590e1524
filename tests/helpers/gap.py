"""Helpers for the loss-accounting tests: a small fleet through real Kafka into both
clusters, then the gap detector and the sinks' replay workers running in-process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_common.fleet_records import DeviceRecord, SiteRecord
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import offset_reader
from ess_common.model import TABLES, Reading, Table
from ess_common.settings import CommonSettings
from ess_common.synthetic import Fleet
from ess_common.topics import telemetry_topic
from ess_gapdetector.bootstrap import bootstrap
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.settings import GapDetectorSettings
from ess_sink.bootstrap import replay_worker as sink_replay_worker
from ess_sink.replay_worker import ReplayWorker
from ess_sink.service import SinkService
from ess_sink.settings import ReplaySettings
from ess_tables.registry import register
from ess_tables.schema import migrate
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import run_sink_until, sink_settings

# 2 sites: site1 bank1 with 3 racks, site2 bank1 with 2 racks; a PCS and a meter each.
SMALL_FLEET = Fleet({"site1": {1: 3}, "site2": {1: 2}})


def minute_ago(minutes: int) -> datetime:
    """A minute-aligned slot `minutes` ago (inside the sink's accepted slot bounds)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes)


@dataclass
class Clusters:
    local: str
    cloud: str

    def dsn(self, cluster: str) -> str:
        return self.local if cluster == "local" else self.cloud


def sink_group(prefix: str, cluster: str) -> str:
    """The test's sink group of `cluster` (the detector is told it, to judge lag)."""
    return f"{prefix}-sink-{cluster}"


def registrations(
    fleet: Fleet, commissioned: datetime, zones: Mapping[str, str] | None = None
) -> tuple[list[SiteRecord], list[DeviceRecord]]:
    sites = [SiteRecord(site=s, time_zone=(zones or {}).get(s, "UTC")) for s in fleet.sites]
    devices = [
        DeviceRecord(
            device=d.key,
            site=d.site,
            table=d.table,
            commissioned_at=commissioned,
            registered_by="test",
        )
        for d in fleet.devices()
    ]
    return sites, devices


async def register_fleet(
    clusters: Clusters,
    fleet: Fleet,
    commissioned: datetime,
    zones: Mapping[str, str] | None = None,
) -> None:
    """Write `fleet` into the registry of both clusters, in service since `commissioned`."""
    sites, devices = registrations(fleet, commissioned, zones)
    for dsn in (clusters.local, clusters.cloud):
        conn = await asyncpg.connect(dsn)
        try:
            await register(conn, sites, devices)
        finally:
            await conn.close()


@asynccontextmanager
async def pipeline(
    settings: CommonSettings,
    prefix: str,
    make_database: DatabaseFactory,
    fleet: Fleet | None = SMALL_FLEET,
) -> AsyncIterator[Clusters]:
    """The test's topics (3 partitions) and a migrated database on each cluster, with
    `fleet` registered (in service since two days ago; None: nothing registered)."""
    async with pipeline_topics(settings.kafka_bootstrap, prefix):
        dsns = {}
        for cluster in ("local", "cloud"):
            dsns[cluster] = await make_database(cluster)
            conn = await asyncpg.connect(dsns[cluster])
            try:
                await migrate(conn)
            finally:
                await conn.close()
        clusters = Clusters(dsns["local"], dsns["cloud"])
        if fleet is not None:
            await register_fleet(clusters, fleet, datetime.now(UTC) - timedelta(days=2))
        yield clusters


async def produce(settings: CommonSettings, prefix: str, readings: Iterable[Reading]) -> int:
    async with ReadingProducer(settings.kafka_bootstrap, prefix) as producer:
        acks = [await producer.send(r) for r in readings]
        await asyncio.gather(*acks)
    return len(acks)


async def table_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}
    finally:
        await conn.close()


async def fill_both_clusters(
    settings: CommonSettings, prefix: str, clusters: Clusters, expected: Mapping[Table, int]
) -> None:
    """Run a sink per cluster until it holds `expected` rows per table."""
    for cluster in ("local", "cloud"):
        dsn = clusters.dsn(cluster)

        async def done(_: SinkService, dsn: str = dsn) -> bool:
            return await table_counts(dsn) == expected

        await run_sink_until(
            sink_settings(
                settings,
                cluster,
                dsn,
                prefix,
                sink_group(prefix, cluster),
                sink_migrate_on_start=False,
            ),
            done,
        )


async def fingerprint(dsn: str) -> list[tuple[Any, ...]]:
    """Rows and their write times, per table: equal fingerprints = untouched."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = [
            await conn.fetchrow(f"SELECT count(*), max(written_at), min(written_at) FROM {t}")
            for t in TABLES
        ]
        return [tuple(r) for r in rows if r is not None]
    finally:
        await conn.close()


async def execute(dsn: str, sql: str, *args: object) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.execute(sql, *args))
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fetchval(dsn: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def detector_settings(
    base: CommonSettings, prefix: str, clusters: Clusters, **extra: object
) -> GapDetectorSettings:
    return GapDetectorSettings.model_validate(
        {
            "kafka_bootstrap": base.kafka_bootstrap,
            "db_local_dsn": SecretStr(clusters.local),
            "db_cloud_dsn": SecretStr(clusters.cloud),
            "topic_prefix": prefix,
            "gap_group_id": unique("gapdetector"),
            "gap_periods": ("minute",),
            "gap_settle_s": 1.0,
            "gap_lookback_s": 7200.0,
            "gap_sink_group_local": sink_group(prefix, "local"),
            "gap_sink_group_cloud": sink_group(prefix, "cloud"),
            "gap_final_after_s": 600.0,
            "gap_coalesce_s": 5,
            "gap_replay_timeout_s": 60.0,
            **extra,
        }
    )


async def run_until(
    detector: GapDetectorService,
    done: Callable[[GapDetectorService], Awaitable[bool] | bool],
    *,
    timeout_s: float = 90.0,
    replay_workers: Iterable[ReplayWorker] = (),
    after_start: Callable[[GapDetectorService], Awaitable[None]] | None = None,
) -> None:
    """Run the detector (and replay workers) until `done`, then stop them all cleanly."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(detector.run(stop))]
    tasks += [asyncio.create_task(w.run(stop)) for w in replay_workers]
    deadline = time.monotonic() + timeout_s
    try:
        if after_start is not None:
            await after_start(detector)
        while True:
            outcome = done(detector)
            if outcome if isinstance(outcome, bool) else await outcome:
                break
            for task in tasks:
                if task.done():
                    task.result()
                    raise AssertionError("a service stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"not done within {timeout_s}s")
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def replay_worker(
    base: CommonSettings, cluster: str, clusters: Clusters, prefix: str
) -> ReplayWorker:
    sink = sink_settings(base, cluster, clusters.dsn(cluster), prefix, unique("g"))  # type: ignore[arg-type]
    return sink_replay_worker(
        sink, CollectorRegistry(), ReplaySettings(group_id=unique("replay"), lateness_s=30)
    )


def new_detector(settings: GapDetectorSettings) -> GapDetectorService:
    return bootstrap(settings, CollectorRegistry())


async def delete_topic_data(settings: CommonSettings, prefix: str) -> None:
    """What retention does to old data: every telemetry record is gone from Kafka."""
    reader = offset_reader(settings.kafka_bootstrap)
    await reader.start()
    try:
        tps = [TopicPartition(telemetry_topic(t, prefix), p) for t in TABLES for p in range(3)]
        ends = await reader.end_offsets(tps)
    finally:
        await reader.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(ends[tp]) for tp in tps if ends[tp]})
    finally:
        await admin.close()


def essctl(
    args: list[str],
    prefix: str,
    clusters: Clusters,
    timeout_s: float = 120,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `essctl` as a process against the test's topics and databases."""
    env = {
        **os.environ,
        **(extra_env or {}),
        "ESS_TOPIC_PREFIX": prefix,
        "ESS_DB_LOCAL_DSN": clusters.local,
        "ESS_DB_CLOUD_DSN": clusters.cloud,
        "ESS_GAP_SINK_GROUP_LOCAL": sink_group(prefix, "local"),
        "ESS_GAP_SINK_GROUP_CLOUD": sink_group(prefix, "cloud"),
    }
    return subprocess.run(
        [sys.executable, "-m", "ess_ctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
