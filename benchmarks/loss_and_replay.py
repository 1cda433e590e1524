"""Benchmark: loss computation against a plain count, and replay against the sink's rate.

    python benchmarks/loss_and_replay.py [--devices 200] [--hours 24] [--keep]

Needs the local stack (`make up`). Writes bench-results/loss.json.

1. Loss computation. A dedicated database on the "local" cluster gets `hours`
   of 1 Hz rack rows for `devices` devices, generated with SQL
   generate_series, with sink loss (a few devices lose 10 minutes) and source
   loss (one device silent for a quarter of the range) built in. Timed, each
   twice (warm cache, best of two reported):
   - baseline: SELECT device_id, time_bucket('1 hour', ts), count(*) ... GROUP BY 1, 2
   - the detector's loss computation for the same window: presence per device
     (counts per hour, exact seconds only for incomplete hours) + the loss math
     against Kafka's bitsets. The results are checked against the built-in
     loss, so a fast wrong answer cannot pass.
   The issue asks for 1,000 devices x 24 h (86.4 M slots); generating that
   many rows takes 11-18 minutes on this 2-core machine (80,000-130,000
   rows/s) and ~17 GB, so the default is 300 devices (25.92 M slots) to stay
   near ten minutes; `--devices 1000` runs the full size. The output says
   which size was measured.
2. Replay throughput. `replay_messages` rack readings are produced to a topic
   of their own; the sink writes them into an empty database (its normal
   rate), then the rows are deleted and `execute_replay` brings them back
   (replay rate); a second replay finds every row present (idempotent rate).
   The detector's Kafka ingest (light parse) is timed on the same topic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import offset_reader
from ess_common.replay import ReplayRequest, SlotRange
from ess_common.settings import CommonSettings, load_settings
from ess_common.synthetic import readings, scaled_fleet
from ess_common.topics import all_topics
from ess_loss.kafka_scan import scan_slots
from ess_loss.lossmath import table_window_loss
from ess_loss.slots import SlotTracker
from ess_sink.bootstrap import bootstrap as sink_bootstrap
from ess_sink.settings import SinkSettings
from ess_tables.batch import Poison, SlotBounds
from ess_tables.presence import presence
from ess_tables.replay import execute_replay, plan_replay
from ess_tables.schema import migrate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results" / "loss.json"
RACKS_PER_SITE = 10
DEFAULT_DEVICES = 300  # 1,000 is the size; see the module docstring
HOLE_S = 600  # sink loss: 10 minutes of a few devices
SINK_LOSS_DEVICES = 4


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _device(d: int) -> str:
    return f"site{d // RACKS_PER_SITE + 1}/bank1/rack{d % RACKS_PER_SITE + 1}"


def _admin_dsn(dsn: SecretStr, database: str) -> str:
    return dsn.get_secret_value().rsplit("/", 1)[0] + f"/{database}"


async def _generate(
    conn: asyncpg.Connection, devices: int, start: datetime, hours: int
) -> dict[str, Any]:
    """Rows for every device and second, minus the built-in sink and source loss."""
    muted = devices - 1
    mute_from, mute_to = start, start + timedelta(hours=hours) / 4
    holes = list(range(SINK_LOSS_DEVICES))
    hole_from = start + timedelta(hours=hours) / 2
    hole_to = hole_from + timedelta(seconds=HOLE_S)
    sql = """
        INSERT INTO rack (device_id, site, bank_id, rack_id, ts, read_at, soc_pct, cell_v_min)
        SELECT 'site' || (d / $5 + 1) || '/bank1/rack' || (d % $5 + 1), 'site' || (d / $5 + 1),
               1, (d % $5 + 1)::smallint, t, t + interval '120 ms', 50 + d % 40, 3.25
        FROM generate_series(0, $1 - 1) d,
             generate_series($2::timestamptz, $3::timestamptz - interval '1 s', interval '1 s') t
        WHERE NOT (d = ANY($4::int[]) AND t >= $6 AND t < $7)
          AND NOT (d = $8 AND t >= $9 AND t < $10)
    """
    started = time.perf_counter()
    for h in range(hours):
        lo = start + timedelta(hours=h)
        await conn.execute(
            sql,
            devices,
            lo,
            lo + timedelta(hours=1),
            holes,
            RACKS_PER_SITE,
            hole_from,
            hole_to,
            muted,
            mute_from,
            mute_to,
        )
        done = (h + 1) * devices * 3600
        rate = done / (time.perf_counter() - started)
        _log(f"generated hour {h + 1}/{hours} (~{done:,} slots, {rate:,.0f} rows/s)")
    await conn.execute("ANALYZE rack")
    return {
        "generate_seconds": round(time.perf_counter() - started, 1),
        "sink_loss_devices": [_device(d) for d in holes],
        "sink_loss_slots_each": HOLE_S,
        "source_loss_device": _device(muted),
        "source_loss_slots": int((mute_to - mute_from).total_seconds()),
    }


async def _baseline(conn: asyncpg.Connection, start: datetime, end: datetime) -> tuple[float, int]:
    t = time.perf_counter()
    rows = await conn.fetch(
        "SELECT device_id, time_bucket('1 hour', ts), count(*) FROM rack"
        " WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2",
        start,
        end,
    )
    return time.perf_counter() - t, len(rows)


async def _loss(
    conn: asyncpg.Connection, start: datetime, end: datetime, devices: int, truth: dict[str, Any]
) -> float:
    """The detector's computation for one window on one cluster; checked against the truth."""
    length = int((end - start).total_seconds())
    full = (1 << length) - 1
    muted = truth["source_loss_device"]
    mute_bits = (1 << truth["source_loss_slots"]) - 1
    kafka = {_device(d): full for d in range(devices)}  # Kafka saw all but the silent hours
    kafka[muted] = full & ~mute_bits
    t = time.perf_counter()
    present = await presence(conn, "rack", start, end)
    names = set(kafka) | set(present)
    loss = table_window_loss(
        length, names, {d: d.split("/")[0] for d in names}, kafka, {"local": present}
    )
    elapsed = time.perf_counter() - t
    total = loss.total("local")
    expected_sink = SINK_LOSS_DEVICES * HOLE_S
    assert total.expected == devices * length, total
    assert total.sink_loss == expected_sink, (total, expected_sink)
    assert total.source_loss == truth["source_loss_slots"], total
    return elapsed


async def bench_loss(
    settings: CommonSettings, devices: int, hours: int, keep: bool
) -> dict[str, Any]:
    name = "ess_bench_loss"
    admin = await asyncpg.connect(_admin_dsn(settings.db_local_dsn, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(_admin_dsn(settings.db_local_dsn, name), command_timeout=3600)
    try:
        await migrate(conn)
        start = datetime(2026, 1, 5, tzinfo=UTC)
        end = start + timedelta(hours=hours)
        truth = await _generate(conn, devices, start, hours)
        size = await conn.fetchval("SELECT hypertable_size('rack')")
        base, loss = [], []
        for _ in range(2):
            elapsed, groups = await _baseline(conn, start, end)
            base.append(elapsed)
            _log(f"baseline count(*) GROUP BY device, hour: {elapsed:.2f} s ({groups:,} groups)")
            loss.append(await _loss(conn, start, end, devices, truth))
            _log(f"loss computation: {loss[-1]:.2f} s")
    finally:
        await conn.close()
        if not keep:
            admin = await asyncpg.connect(_admin_dsn(settings.db_local_dsn, "postgres"))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
    return {
        "devices": devices,
        "hours": hours,
        "slots": devices * hours * 3600,
        "full_size_of_issue": devices == 1000 and hours == 24,
        "table_bytes": int(size or 0),
        **truth,
        "baseline_seconds": [round(x, 3) for x in base],
        "loss_seconds": [round(x, 3) for x in loss],
        "ratio_per_run": [round(x / y, 3) for x, y in zip(loss, base, strict=True)],
        "ratio_best": round(min(loss) / min(base), 3),
        "target_ratio": 1.5,
    }


async def _produce(settings: CommonSettings, prefix: str, count: int) -> tuple[datetime, datetime]:
    fleet = scaled_fleet(200, racks_per_bank=RACKS_PER_SITE)
    racks = sum(1 for d in fleet.devices() if d.table == "rack")
    seconds = max(1, count // racks)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    async with ReadingProducer(settings.kafka_bootstrap, prefix) as producer:
        acks = []
        for r in readings(fleet, start, seconds=seconds):
            if r.table == "rack":
                acks.append(await producer.send(r))
        await asyncio.gather(*acks)
    return start, start + timedelta(seconds=seconds)


async def _rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM rack"))
    finally:
        await conn.close()


async def _sink_rate(settings: CommonSettings, prefix: str, dsn: str, total: int) -> float:
    sink_settings = SinkSettings.model_validate(
        {
            "kafka_bootstrap": settings.kafka_bootstrap,
            "db_local_dsn": SecretStr(dsn),
            "topic_prefix": prefix,
            "sink_cluster": "local",
            "sink_group_id": f"bench-{uuid.uuid4().hex[:8]}",
            "sink_tables": ["rack"],
        }
    )
    service = sink_bootstrap(sink_settings, CollectorRegistry())
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    first: tuple[float, int] | None = None  # from the first rows: group join is not writing
    while (rows := await _rows(dsn)) < total:
        if task.done():
            task.result()
        if first is None and rows:
            first = (time.perf_counter(), rows)
        await asyncio.sleep(0.1)
    done = time.perf_counter()
    stop.set()
    await task
    assert first is not None
    return (total - first[1]) / (done - first[0])


class _NoDeadLetters:
    """The benchmark's readings are all valid: a dead letter would be a bug."""

    async def send(self, poison: Sequence[Poison], stop: asyncio.Event) -> None:
        if poison:
            raise AssertionError(f"unexpected dead letters: {poison[:3]}")


_NO_DEAD_LETTERS = _NoDeadLetters()


async def _replay_rate(
    settings: CommonSettings, prefix: str, dsn: str, start: datetime, end: datetime
) -> tuple[float, int, int]:
    request = ReplayRequest(
        cluster="local",
        table="rack",
        slots=SlotRange(start=start, end=end),
        reason="operator",
        requested_by="bench",
    )
    conn = await asyncpg.connect(dsn)
    reader = offset_reader(settings.kafka_bootstrap)
    await reader.start()
    try:
        plan = await plan_replay(reader, request, prefix)
        t = time.perf_counter()
        counts = await execute_replay(
            reader, conn, plan, dead_letters=_NO_DEAD_LETTERS, bounds=SlotBounds(), prefix=prefix
        )
        elapsed = time.perf_counter() - t
    finally:
        await reader.stop()
        await conn.close()
    return counts.rows_in_range / elapsed, counts.rows_inserted, counts.rows_present


async def bench_replay(settings: CommonSettings, messages: int) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    topics = all_topics(prefix)
    await admin.create_topics([NewTopic(t, 6, 1) for t in topics])
    name = "ess_bench_replay"
    pg = await asyncpg.connect(_admin_dsn(settings.db_local_dsn, "postgres"))
    await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await pg.execute(f'CREATE DATABASE "{name}"')
    dsn = _admin_dsn(settings.db_local_dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        _log(f"producing {messages:,} rack readings")
        start, end = await _produce(settings, prefix, messages)
        total = await _count_topic(settings, prefix, start, end)
        sink = await _sink_rate(settings, prefix, dsn, total)
        _log(f"sink: {sink:,.0f} rows/s")
        conn = await asyncpg.connect(dsn)
        await conn.execute("TRUNCATE rack")
        await conn.close()
        replay, inserted, _ = await _replay_rate(settings, prefix, dsn, start, end)
        _log(f"replay into an empty table: {replay:,.0f} rows/s ({inserted:,} inserted)")
        again, inserted_again, present = await _replay_rate(settings, prefix, dsn, start, end)
        _log(f"replay with every row present: {again:,.0f} rows/s ({present:,} present)")
        assert inserted == total, (inserted, total)
        assert (inserted_again, present) == (0, total)
        t = time.perf_counter()
        scan = await scan_slots(
            settings.kafka_bootstrap, prefix, "rack", (start, end), SlotTracker(86400, 60)
        )
        ingest = scan.messages / (time.perf_counter() - t)
        _log(f"detector ingest (light parse into bitsets): {ingest:,.0f} messages/s")
    finally:
        await admin.delete_topics(topics)
        await admin.close()
        await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await pg.close()
    return {
        "messages": total,
        "sink_rows_per_s": round(sink),
        "replay_rows_per_s": round(replay),
        "replay_all_present_rows_per_s": round(again),
        "replay_vs_sink": round(replay / sink, 2),
        "detector_ingest_messages_per_s": round(ingest),
    }


async def _count_topic(
    settings: CommonSettings, prefix: str, start: datetime, end: datetime
) -> int:
    tracker = SlotTracker(86400, 60)
    scan = await scan_slots(settings.kafka_bootstrap, prefix, "rack", (start, end), tracker)
    return scan.messages


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(CommonSettings)
    out: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out["loss"] = await bench_loss(settings, args.devices, args.hours, args.keep)
    out["replay"] = await bench_replay(settings, args.replay_messages)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=DEFAULT_DEVICES)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--replay-messages", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()
    os.chdir(ROOT)  # the stack's env file is found relative to the checkout
    result = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    loss, replay = result["loss"], result["replay"]
    scale = "" if loss["full_size_of_issue"] else " (scaled down from 1,000 devices: see --devices)"
    print(
        f"loss computation, {loss['devices']:,} devices x {loss['hours']} h = {loss['slots']:,}"
        f" slots{scale}: {min(loss['loss_seconds']):.2f} s vs count(*) GROUP BY device, hour"
        f" {min(loss['baseline_seconds']):.2f} s -> {loss['ratio_best']:.2f}x (target <= 1.5x)"
    )
    print(
        f"replay: {replay['replay_rows_per_s']:,} rows/s into an empty table,"
        f" {replay['replay_all_present_rows_per_s']:,} rows/s when all present;"
        f" sink normal rate {replay['sink_rows_per_s']:,} rows/s;"
        f" detector ingest {replay['detector_ingest_messages_per_s']:,} messages/s"
    )
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
