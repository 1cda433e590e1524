"""Benchmark: the gap detector's restart, time from start to its first evaluated window
with a day of history in Kafka, before and after keeping its state in the clusters.

    python benchmarks/detector_restart.py [--devices 12] [--hours 24]

Needs the local stack (`make up`). Writes bench-results/detector_restart.json.

`hours` of 1 Hz rack readings for `devices` devices are produced to topics of
their own (record times = now, so every one of them is inside the detector's
rebuild horizon); both clusters get a database of their own with the fleet
registered. Then, through the same `GapDetectorService` code path:

- before: a detector with `ESS_GAP_RESUME_FROM_STATE=false`, which is what the
  detector did before this change on every start: seek by time to
  `now - horizon` and re-read all of it before the first window is due;
- after: the same detector restarted (same group) with its saved state: it
  loads the bitsets from the cluster and reads Kafka from the saved positions.

Each figure is the wall time from `run()` to the first evaluated window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_common.fleet_records import DeviceRecord, SiteRecord
from ess_common.kafka import ProducerOptions, ReadingProducer
from ess_common.settings import CommonSettings, load_settings
from ess_common.synthetic import Fleet, readings
from ess_common.topics import all_topics
from ess_gapdetector.bootstrap import bootstrap
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.settings import GapDetectorSettings
from ess_tables.registry import register
from ess_tables.schema import migrate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results" / "detector_restart.json"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _dsn(dsn: SecretStr, database: str) -> str:
    return dsn.get_secret_value().rsplit("/", 1)[0] + f"/{database}"


async def _databases(settings: CommonSettings, name: str, fleet: Fleet, since: datetime) -> None:
    sites = [SiteRecord(site=s) for s in fleet.sites]
    devices = [
        DeviceRecord(
            device=d.key, site=d.site, table=d.table, commissioned_at=since, registered_by="bench"
        )
        for d in fleet.devices()
    ]
    for cluster in ("local", "cloud"):
        admin = await asyncpg.connect(_dsn(settings.dsn(cluster), "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')  # a generated, quoted name
        finally:
            await admin.close()
        conn = await asyncpg.connect(_dsn(settings.dsn(cluster), name))
        try:
            await migrate(conn)
            await register(conn, sites, devices)
        finally:
            await conn.close()


async def _drop(settings: CommonSettings, name: str) -> None:
    for cluster in ("local", "cloud"):
        admin = await asyncpg.connect(_dsn(settings.dsn(cluster), "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _produce(
    settings: CommonSettings, prefix: str, fleet: Fleet, start: datetime, s: int
) -> int:
    sent = 0
    options = ProducerOptions(linger_ms=100, client_id="bench-restart")
    async with ReadingProducer(settings.kafka_bootstrap, prefix, options) as producer:
        pending = []
        for reading in readings(fleet, start, seconds=s):
            if reading.table != "rack":
                continue
            pending.append(await producer.send(reading))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    return sent


async def _time_to_first_window(settings: GapDetectorSettings) -> tuple[float, GapDetectorService]:
    detector = bootstrap(settings, CollectorRegistry())
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(detector.run(stop))
    try:
        while not detector.results:
            if task.done():
                task.result()
                raise RuntimeError("detector stopped by itself")
            await asyncio.sleep(0.05)
        took = time.perf_counter() - started
        if settings.gap_resume_from_state is False:
            # let it save its state (both clusters), for the restart that follows
            while len(detector.state.saved_up_to) < 2:  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)
    return took, detector


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(CommonSettings)
    tag = uuid.uuid4().hex[:8]
    prefix, name = f"bench-restart-{tag}", f"bench_restart_{tag}"
    racks = args.devices
    fleet = Fleet({"site1": {1: racks}})
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=args.hours) - timedelta(minutes=2)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, 3, 1) for t in all_topics(prefix)])
    try:
        await _databases(settings, name, fleet, start - timedelta(days=1))
        _log(f"producing {args.hours} h of {racks} racks")
        t = time.perf_counter()
        messages = await _produce(settings, prefix, fleet, start, args.hours * 3600)
        produce_s = time.perf_counter() - t
        _log(f"{messages:,} messages in {produce_s:.0f}s")
        base = {
            "kafka_bootstrap": settings.kafka_bootstrap,
            "db_local_dsn": SecretStr(_dsn(settings.db_local_dsn, name)),
            "db_cloud_dsn": SecretStr(_dsn(settings.db_cloud_dsn, name)),
            "topic_prefix": prefix,
            "gap_group_id": f"bench-gap-{tag}",
            "gap_tables": ("rack",),
            "gap_settle_s": 1.0,
            "gap_heal": False,
            "gap_store_daily": False,
            "gap_state_interval_s": 2.0,
        }
        before_settings = GapDetectorSettings.model_validate(
            {**base, "gap_resume_from_state": False}
        )
        before, _ = await _time_to_first_window(before_settings)
        _log(f"before (re-read the horizon): {before:.1f}s to the first window")
        after_settings = GapDetectorSettings.model_validate({**base, "gap_resume_from_state": True})
        after, restarted = await _time_to_first_window(after_settings)
        _log(f"after (state from the clusters): {after:.1f}s to the first window")
        return {
            "when": now.isoformat(),
            "machine": {"cpus": os.cpu_count()},
            "history_hours": args.hours,
            "devices": racks,
            "messages": messages,
            "before_s_to_first_window": round(before, 2),
            "after_s_to_first_window": round(after, 2),
            "speed_up": round(before / after, 1) if after else None,
            "segments_restored": restarted.state.restored_segments,
        }
    finally:
        await admin.delete_topics(all_topics(prefix))
        await admin.close()
        await _drop(settings, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=12)
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    os.chdir(ROOT)
    result = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
