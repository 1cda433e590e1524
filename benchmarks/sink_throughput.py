"""Benchmark: the sink's sustained write rate against its ceiling and naive INSERT, same rows.

    python benchmarks/sink_throughput.py [--rows 400000] [--naive-sample 5000] [--keep]

Needs the local stack (`make up`). Writes bench-results/sink.json.

One run, one set of rows (a scaled fleet: ~77 % rack rows, the rest bank,
PCS and meter rows), one dedicated database on the "local" cluster:

1. the ceiling, measured the way the sink writes: asyncpg binary
   `copy_records_to_table` of the same row tuples, in batches of the sink's
   size (`ESS_SINK_BATCH_MAX_ROWS`, 20,000, in production order, one
   transaction each) straight into the same empty hypertables (same unique
   key and index), timed like the sink: rows committed between the first and
   the last batch's commit / that time. No Kafka, no decoding, no staging,
   no ON CONFLICT: what the database takes at most through this protocol;
2. a second reference: `psql \\copy ... FROM file WITH (FORMAT csv)` of the
   rows, timed end to end (process spawns and CSV parsing included), as the
   earlier versions of this benchmark reported it;
3. the sink's full path, the hypertables emptied again: the same readings
   are in Kafka (6 partitions per table) before the sink starts; a real
   `python -m ess_sink` process fetches, decodes, COPYs into staging and
   moves with INSERT ... ON CONFLICT DO NOTHING, committing offsets after
   every transaction. Rate = rows written between the first and the last
   committed batch / that time (start-up excluded; it is reported apart);
4. replay: a second sink with a new consumer group reads the same topics
   from offset 0; every row is already present;
5. naive: one autocommitted INSERT ... ON CONFLICT DO NOTHING per row for a
   sample of the rows, the rate extrapolated.

The sink is reported as a ratio of the ceiling (and of psql). CPU seconds per
million rows and peak RSS are the sink process's own
(/proc/<pid>/stat, VmHWM); the database server's work is not in them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from ess_common.codec import encode_reading
from ess_common.kafka import ProducerOptions, ReadingProducer
from ess_common.model import TABLES, Table
from ess_common.settings import CommonSettings, load_settings
from ess_common.synthetic import readings, scaled_fleet
from ess_common.topics import all_topics, telemetry_topic
from ess_tables.rows import NATURAL_KEY, columns, to_row
from ess_tables.schema import migrate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results" / "sink.json"
PARTITIONS = 6
FLEET_DEVICES = 1000
TARGET_VS_CEILING = 0.6
SINK_BATCH_ROWS = 20_000  # the sink's default ESS_SINK_BATCH_MAX_ROWS
TARGET_REPLAY_VS_NEW = 0.5


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""  # unquoted empty field = NULL in CSV mode
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass
class Dataset:
    files: dict[Table, Path]
    counts: dict[Table, int]
    ordered: list[tuple[Table, tuple[Any, ...]]]  # every row, in production order

    @property
    def sample(self) -> list[tuple[Table, tuple[Any, ...]]]:
        """The rows for the naive INSERT."""
        return self.ordered[: self.sample_size]

    sample_size: int = 0

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


async def _prepare(
    settings: CommonSettings, prefix: str, workdir: Path, rows: int, sample: int
) -> Dataset:
    """Readings to Kafka (the sink's input) and to CSV files (psql's input), in one pass."""
    fleet = scaled_fleet(FLEET_DEVICES)
    slots = -(-rows // len(fleet.devices()))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    files = {t: workdir / f"{t}.csv" for t in TABLES}
    handles = {t: files[t].open("w", newline="") for t in TABLES}
    writers = {t: csv.writer(handles[t]) for t in TABLES}
    counts: Counter[Table] = Counter()
    kept: list[tuple[Table, tuple[Any, ...]]] = []
    options = ProducerOptions(linger_ms=20, max_batch_bytes=1024 * 1024)
    try:
        async with ReadingProducer(settings.kafka_bootstrap, prefix, options) as producer:
            acks = []
            for reading in readings(fleet, start, slots):
                row = to_row(reading)
                writers[reading.table].writerow([_csv_value(v) for v in row])
                counts[reading.table] += 1
                kept.append((reading.table, row))
                acks.append(
                    await producer.send_raw(
                        telemetry_topic(reading.table, prefix),
                        encode_reading(reading),
                        reading.device.key.encode(),
                    )
                )
                if len(acks) >= 20_000:
                    await asyncio.gather(*acks)
                    acks.clear()
            await asyncio.gather(*acks)
    finally:
        for handle in handles.values():
            handle.close()
    return Dataset(files, dict(counts), kept, sample)


async def _truncate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for table in TABLES:
            await conn.execute(f"TRUNCATE {table}")
    finally:
        await conn.close()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        # Table names come from the fixed TABLES tuple.
        return sum([await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES])  # noqa: S608
    finally:
        await conn.close()


async def _binary_copy(dsn: str, data: Dataset) -> dict[str, Any]:
    """The ceiling: the sink's batches as binary COPY straight into the hypertables."""
    conn = await asyncpg.connect(dsn)
    try:
        first: tuple[float, int] | None = None  # time of the first commit, rows by then
        done = 0
        for start in range(0, len(data.ordered), SINK_BATCH_ROWS):
            by_table: dict[Table, list[tuple[Any, ...]]] = {}
            for table, row in data.ordered[start : start + SINK_BATCH_ROWS]:
                by_table.setdefault(table, []).append(row)
            async with conn.transaction():
                for table, rows in by_table.items():
                    await conn.copy_records_to_table(
                        table, records=rows, columns=list(columns(table))
                    )
            done += sum(len(rows) for rows in by_table.values())
            now = time.perf_counter()
            if first is None:
                first = (now, done)
    finally:
        await conn.close()
    assert first is not None
    assert await _count(dsn) == data.rows
    seconds = now - first[0]
    return {
        "how": "asyncpg copy_records_to_table (binary), batches of"
        f" {SINK_BATCH_ROWS:,} rows, one transaction each, into the hypertables",
        "measured_rows": done - first[1],
        "measured_seconds": round(seconds, 3),
        "rows_per_s": round((done - first[1]) / seconds),
    }


async def _psql_copy(dsn: str, data: Dataset) -> dict[str, Any]:
    psql = shutil.which("psql")
    started = time.perf_counter()
    if psql:
        for table, path in data.files.items():
            cols = ",".join(columns(table))
            proc = await asyncio.create_subprocess_exec(
                psql,
                dsn,
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"\\copy {table} ({cols}) FROM '{path}' WITH (FORMAT csv)",
            )
            if await proc.wait() != 0:
                raise RuntimeError(f"psql \\copy into {table} failed")
        how = f"psql \\copy (CSV), {psql}"
    else:  # the ceiling with the same server-side work, from Python
        conn = await asyncpg.connect(dsn)
        try:
            for table, path in data.files.items():
                await conn.copy_to_table(
                    table, source=path, columns=list(columns(table)), format="csv"
                )
        finally:
            await conn.close()
        how = "asyncpg copy_to_table (CSV): psql not found on this host"
    seconds = time.perf_counter() - started
    assert await _count(dsn) == data.rows
    return {"how": how, "seconds": round(seconds, 3), "rows_per_s": round(data.rows / seconds)}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _scrape(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


async def _run_sink(
    settings: CommonSettings, dsn: str, prefix: str, *, expected: int, counter: str, log: Path
) -> dict[str, Any]:
    """A real sink process until `counter` reaches `expected`; its rate, CPU and memory."""
    port = _free_port()
    env = {
        **os.environ,
        "ESS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ESS_SINK_CLUSTER": "local",
        "ESS_DB_LOCAL_DSN": dsn,
        "ESS_TOPIC_PREFIX": prefix,
        "ESS_SINK_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "ESS_HTTP_PORT": str(port),
        "ESS_LOG_FORMAT": "text",
    }
    launched = time.perf_counter()
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ess_sink", env=env, stdout=out, stderr=out, cwd=ROOT
        )
    try:
        first: tuple[float, float, float] | None = None  # time, count, cpu
        deadline = time.monotonic() + 600
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the sink exited ({proc.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sink did not finish in 600 s; see {log}")
            value = _scrape(port, counter)
            now, cpu = time.perf_counter(), _cpu_seconds(proc.pid)
            if value and first is None:
                first = (now, value, cpu)
            if value is not None and value >= expected:
                break
            await asyncio.sleep(0.05)
        assert first is not None
        rows = expected - first[1]
        seconds = now - first[0]
        result = {
            "rows_per_s": round(rows / seconds) if seconds > 0 else None,
            "measured_rows": int(rows),
            "measured_seconds": round(seconds, 3),
            "seconds_including_startup": round(now - launched, 3),
            "cpu_s_per_million_rows": round((cpu - first[2]) / rows * 1e6, 2),
            "peak_rss_mb": round(_peak_rss_mb(proc.pid), 1),
            "written": int(_scrape(port, "ess_sink_rows_written_total") or 0),
            "duplicates": int(_scrape(port, "ess_sink_duplicates_skipped_total") or 0),
        }
        proc.send_signal(signal.SIGTERM)
        result["exit_code"] = await asyncio.wait_for(proc.wait(), 60)
        return result
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _naive_insert(dsn: str, sample: list[tuple[Table, tuple[Any, ...]]]) -> dict[str, Any]:
    sql = {}
    for table in TABLES:
        cols = columns(table)
        params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        sql[table] = (
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({params})"  # noqa: S608 - fixed names
            f" ON CONFLICT ({', '.join(NATURAL_KEY)}) DO NOTHING"
        )
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for table, row in sample:
            await conn.execute(sql[table], *row)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {
        "how": "one autocommitted INSERT ... ON CONFLICT DO NOTHING per row (asyncpg)",
        "sample_rows": len(sample),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(sample) / seconds),
    }


def _machine(server_version: str, timescaledb: str | None) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": server_version,
        "timescaledb": timescaledb,
    }


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (the one least disturbed by other work), with every run's rate."""
    best = max(runs, key=lambda r: r["rows_per_s"])
    return {**best, "runs_rows_per_s": [r["rows_per_s"] for r in runs]}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(CommonSettings)
    base = settings.db_local_dsn.get_secret_value().rsplit("/", 1)[0]
    name = f"bench_sink_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-sink-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    pg_admin = await asyncpg.connect(f"{base}/postgres")
    await pg_admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{base}/{name}"
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in all_topics(prefix)])
        conn = await asyncpg.connect(dsn)
        try:
            report = await migrate(conn)
            server_version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp:
            workdir = Path(tmp)
            _log(f"producing {args.rows:,} readings to Kafka and CSV files")
            data = await _prepare(settings, prefix, workdir, args.rows, args.naive_sample)
            sink_log = workdir / "sink.log"
            ceilings, copies, news, replays = [], [], [], []
            for run in range(1, args.repeat + 1):  # alternating, so load from others hits all
                await _truncate(dsn)
                ceilings.append(await _binary_copy(dsn, data))
                await _truncate(dsn)
                copies.append(await _psql_copy(dsn, data))
                _log(
                    f"run {run}: binary COPY {ceilings[-1]['rows_per_s']:,} rows/s,"
                    f" psql \\copy {copies[-1]['rows_per_s']:,} rows/s; the sink"
                )
                await _truncate(dsn)
                news.append(
                    await _run_sink(
                        settings,
                        dsn,
                        prefix,
                        expected=data.rows,
                        counter="ess_sink_rows_written_total",
                        log=sink_log,
                    )
                )
                assert await _count(dsn) == data.rows
                _log(f"run {run}: sink {news[-1]['rows_per_s']:,} rows/s")
            for run in range(1, args.repeat + 1):
                replays.append(
                    await _run_sink(
                        settings,
                        dsn,
                        prefix,
                        expected=data.rows,
                        counter="ess_sink_duplicates_skipped_total",
                        log=sink_log,
                    )
                )
                assert replays[-1]["written"] == 0
                assert await _count(dsn) == data.rows
                _log(f"run {run}: replay {replays[-1]['rows_per_s']:,} rows/s")
            ceiling, copy, new, replay = (
                _best(ceilings),
                _best(copies),
                _best(news),
                _best(replays),
            )
            _log("naive INSERT sample")
            await _truncate(dsn)
            naive = await _naive_insert(dsn, data.sample)
    finally:
        if not args.keep:
            await pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.delete_topics(all_topics(prefix))
        await pg_admin.close()
        await admin.close()

    ratio = new["rows_per_s"] / ceiling["rows_per_s"]
    replay_ratio = replay["rows_per_s"] / new["rows_per_s"]
    return {
        "benchmark": "sink_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(server_version, report.timescaledb),
        "rows": data.rows,
        "rows_by_table": data.counts,
        "kafka_partitions_per_table": PARTITIONS,
        "runs_per_path": args.repeat,
        "ceiling_binary_copy": ceiling,
        "psql_copy": {
            **copy,
            "ratio_to_ceiling": round(copy["rows_per_s"] / ceiling["rows_per_s"], 3),
        },
        "sink_new_rows": {
            **new,
            "ratio_to_ceiling": round(ratio, 3),
            "ratio_to_psql_copy": round(new["rows_per_s"] / copy["rows_per_s"], 3),
        },
        "sink_replay": {
            **replay,
            "ratio_to_ceiling": round(replay["rows_per_s"] / ceiling["rows_per_s"], 3),
            "ratio_to_psql_copy": round(replay["rows_per_s"] / copy["rows_per_s"], 3),
            "ratio_to_new_rows": round(replay_ratio, 3),
        },
        "naive_insert": {
            **naive,
            "ratio_to_ceiling": round(naive["rows_per_s"] / ceiling["rows_per_s"], 4),
            "ratio_to_psql_copy": round(naive["rows_per_s"] / copy["rows_per_s"], 4),
        },
        "targets": {
            "sink_vs_ceiling": {
                "target": TARGET_VS_CEILING,
                "measured": round(ratio, 3),
                "met": ratio >= TARGET_VS_CEILING,
            },
            "replay_vs_new_rows": {
                "target": TARGET_REPLAY_VS_NEW,
                "measured": round(replay_ratio, 3),
                "met": replay_ratio >= TARGET_REPLAY_VS_NEW,
            },
        },
    }


def _print(result: dict[str, Any]) -> None:
    ceiling, copy, new, replay, naive = (
        result["ceiling_binary_copy"],
        result["psql_copy"],
        result["sink_new_rows"],
        result["sink_replay"],
        result["naive_insert"],
    )
    m = result["machine"]
    print(
        f"\nsink throughput: {result['rows']:,} rows {result['rows_by_table']}, {result['date']}\n"
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB;"
        f" PostgreSQL {m['postgresql']}, TimescaleDB {m['timescaledb']}\n"
    )
    head = (
        f"{'path':<44}{'rows/s':>10}{'vs ceiling':>11}{'vs psql':>9}"
        f"{'CPU s/M rows':>14}{'peak RSS':>10}"
    )
    print(head)
    print("-" * len(head))
    print(f"{'ceiling: binary COPY, sink-sized batches':<44}{ceiling['rows_per_s']:>10,}{1:>11.2f}")
    psql_label = "psql \\copy CSV, end to end"
    print(f"{psql_label:<44}{copy['rows_per_s']:>10,}{copy['ratio_to_ceiling']:>11.2f}{1:>9.2f}")
    for label, r in (
        ("sink: Kafka -> COPY staging -> ON CONFLICT", new),
        ("sink replay: every row already present", replay),
    ):
        print(
            f"{label:<44}{r['rows_per_s']:>10,}{r['ratio_to_ceiling']:>11.2f}"
            f"{r['ratio_to_psql_copy']:>9.2f}"
            f"{r['cpu_s_per_million_rows']:>14.1f}{r['peak_rss_mb']:>8.0f} MB"
        )
    print(
        f"{'naive INSERT per row (' + format(naive['sample_rows'], ',') + ' rows)':<44}"
        f"{naive['rows_per_s']:>10,}{naive['ratio_to_ceiling']:>11.3f}"
        f"{naive['ratio_to_psql_copy']:>9.3f}"
    )
    for name, t in result["targets"].items():
        state = "met" if t["met"] else "NOT met"
        print(f"target {name}: >= {t['target']} -> {t['measured']:.2f} ({state})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--naive-sample", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per path; the best counts")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    os.chdir(ROOT)  # the stack's env file is found relative to the checkout
    result = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
