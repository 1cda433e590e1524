"""Benchmark: readings archived per second per core, next to pyarrow writing the same rows
straight to local disk, and bytes per reading in Parquet against the hypertable.

    python benchmarks/archive_throughput.py [--devices 1000] [--seconds 400] [--repeat 2]

On the running local stack (`make up`: Kafka, MinIO, the local TimescaleDB), in one run:

1. `--devices` x `--seconds` synthetic readings (`ess_common.synthetic`, wire JSON)
   are produced to private topics (6 partitions);
2. the **archive** (`ess_archive`, in this process, default settings but a 2 s flush
   timer) reads them with a new group into a private prefix of the stack's bucket:
   decode, stage (dedupe against the archived slots), one segment and one manifest update per
   table and site, offset commits; timed from its start to the last reading durable;
   then the **roll-up** of those segments into parts, timed apart;
3. the **ceiling**: the same rows (already decoded, in memory) grouped by table and
   site, sorted and written by pyarrow with the same schema and compression to a local
   file per group: no Kafka, no decoding, no dedupe, no network, no manifest;
4. **bytes per reading**: the rolled-up parts' bytes per table against the same rows
   written to a hypertable of a private database on the local cluster
   (`hypertable_size`, indexes included) with the sinks' write path.

Rates are the best of `--repeat` runs (each with new topics, group and prefix); CPU is
this process's (the archive runs in it; MinIO's own CPU is reported apart, read from
/proc for the stack's server, which other sessions may share). Writes
bench-results/archive.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow.parquet as pq
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from ess_archive.bootstrap import bootstrap
from ess_archive.service import ArchiveService
from ess_archive.settings import ArchiveSettings
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.schema import first_of_each_key, rows_to_arrow
from ess_archive_layout.settings import ArchiveStoreSettings
from ess_archive_layout.store import ArchiveStore
from ess_common.codec import encode_reading
from ess_common.kafka import ReadingProducer
from ess_common.model import TABLES, Table
from ess_common.settings import CommonSettings, load_settings
from ess_common.synthetic import readings, scaled_fleet
from ess_common.topics import all_topics, telemetry_topic
from ess_tables.presence import table_bytes
from ess_tables.rows import to_row
from ess_tables.schema import migrate
from ess_tables.writer import write_rows

ROOT = Path(__file__).resolve().parents[1]
SITE_AT = 1


def _minio_cpu_s() -> float | None:
    """CPU seconds of the stack's MinIO so far (utime + stime), None if not found."""
    pid_file = ROOT / ".local" / "pids" / "minio.pid"
    try:
        fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1]
    except (OSError, ValueError):
        return None
    parts = fields.split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def _produce(common: CommonSettings, prefix: str, batch: list[Any]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 6, 1) for t in all_topics(prefix)])
    finally:
        await admin.close()
    async with ReadingProducer(common.kafka_bootstrap, prefix) as producer:
        for i in range(0, len(batch), 20_000):
            acks = [
                await producer.send_raw(
                    telemetry_topic(r.table, prefix), encode_reading(r), r.device.key.encode()
                )
                for r in batch[i : i + 20_000]
            ]
            await asyncio.gather(*acks)


async def _drop_topics(common: CommonSettings, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(all_topics(prefix))
    finally:
        await admin.close()


def _archived(service: ArchiveService) -> float:
    return sum(
        float(s.value)
        for m in service.metrics.rows_archived.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )


async def _archive_run(
    common: CommonSettings, store: ArchiveStoreSettings, batch: list[Any], run: int
) -> dict[str, Any]:
    tag = f"bench-archive-{os.getpid()}-{run}-{int(time.time())}"
    await _produce(common, tag, batch)
    prefixed = store.model_copy(update={"archive_s3_prefix": f"{tag}/"})
    settings = ArchiveSettings.model_validate(
        {
            **prefixed.model_dump(),
            "kafka_bootstrap": common.kafka_bootstrap,
            "topic_prefix": tag,
            "archive_group_id": tag,
            # the default 30 s would leave the last readings waiting idle: flushes by size,
            # and the tail after 2 s, so the wall time is work, not the flush timer
            "archive_flush_s": 2.0,
        }
    )
    service = bootstrap(settings, CollectorRegistry())
    stop = asyncio.Event()
    minio0, cpu0, wall0 = _minio_cpu_s(), time.process_time(), time.perf_counter()
    task = asyncio.create_task(service.run(stop))
    try:
        while _archived(service) < len(batch):
            if task.done():
                task.result()
                raise RuntimeError("the archive stopped by itself")
            await asyncio.sleep(0.05)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        minio1 = _minio_cpu_s()
        roll0, rollcpu0 = time.perf_counter(), time.process_time()
        await service.rollups(force=True)
        roll_wall, roll_cpu = time.perf_counter() - roll0, time.process_time() - rollcpu0
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    reader = ArchiveReader(ArchiveStore(prefixed))
    part_bytes: dict[str, int] = defaultdict(int)
    part_rows: dict[str, int] = defaultdict(int)
    for pd in await reader.partition_days():
        m = (await reader.manifest(pd)).manifest
        part_bytes[pd.table] += sum(p.bytes for p in m.parts)
        part_rows[pd.table] += sum(p.rows for p in m.parts)
    objects = ArchiveStore(prefixed)
    await objects.delete([o.path for o in await objects.list_objects("")])
    await _drop_topics(common, tag)
    n = len(batch)
    minio_cpu = (minio1 - minio0) if minio0 is not None and minio1 is not None else None
    return {
        "readings": n,
        "wall_s": round(wall, 2),
        "archived_per_s": round(n / wall),
        "archived_per_cpu_s": round(n / cpu),
        "minio_cpu_s": round(minio_cpu, 2) if minio_cpu is not None else None,
        "rollup_wall_s": round(roll_wall, 2),
        "rollup_per_cpu_s": round(n / roll_cpu) if roll_cpu > 0 else None,
        "parquet_bytes": dict(part_bytes),
        "parquet_rows": dict(part_rows),
    }


def _ceiling(rows: dict[tuple[Table, str], list[tuple[Any, ...]]], workdir: Path) -> dict[str, Any]:
    """pyarrow alone: the same rows sorted and written to local files, same schema/codec."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    size = 0
    for i, ((table, _site), group) in enumerate(sorted(rows.items())):
        data = first_of_each_key(rows_to_arrow(table, group))  # the same sort the archive does
        path = workdir / f"{table}-{i}.parquet"
        pq.write_table(
            data, path, compression="zstd", compression_level=3, use_dictionary=["device_id"]
        )
        size += path.stat().st_size
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = sum(len(g) for g in rows.values())
    return {"written_per_s": round(n / wall), "written_per_cpu_s": round(n / cpu), "bytes": size}


async def _hypertable_bytes(
    common: CommonSettings, rows: dict[Table, list[tuple[Any, ...]]]
) -> dict[str, int]:
    admin_dsn = common.db_local_dsn.get_secret_value().rsplit("/", 1)[0] + "/postgres"
    name = f"bench_archive_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        conn = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{name}")
        try:
            await migrate(conn)
            sizes: dict[str, int] = {}
            for table, table_rows in rows.items():
                for i in range(0, len(table_rows), 20_000):
                    await write_rows(conn, table, table_rows[i : i + 20_000])
                await conn.execute(f"VACUUM ANALYZE {table}")
                sizes[table] = await table_bytes(conn, table)
            return sizes
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    common = load_settings(CommonSettings)
    store = load_settings(ArchiveStoreSettings)
    if not store.archive_configured:
        raise SystemExit("no ESS_ARCHIVE_S3_BUCKET: run `make up` (it starts MinIO)")
    fleet = scaled_fleet(args.devices)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    batch = list(readings(fleet, start, args.seconds))
    by_group: dict[tuple[Table, str], list[tuple[Any, ...]]] = defaultdict(list)
    by_table: dict[Table, list[tuple[Any, ...]]] = defaultdict(list)
    for r in batch:
        row = to_row(r)
        by_group[(r.table, row[SITE_AT])].append(row)
        by_table[r.table].append(row)
    runs, ceilings = [], []
    with tempfile.TemporaryDirectory(prefix="ess-archive-bench-") as tmp:
        for i in range(args.repeat):  # alternate, so load from other processes hits both
            ceilings.append(_ceiling(by_group, Path(tmp)))
            runs.append(await _archive_run(common, store, batch, i))
    hyper = await _hypertable_bytes(common, by_table)
    best = max(runs, key=lambda r: r["archived_per_cpu_s"])
    top = max(ceilings, key=lambda c: c["written_per_cpu_s"])
    per_table = {
        t: {
            "rows": len(by_table[t]),
            "parquet_bytes_per_reading": round(
                best["parquet_bytes"][t] / best["parquet_rows"][t], 2
            ),
            "hypertable_bytes_per_reading": round(hyper[t] / len(by_table[t]), 1),
        }
        for t in TABLES
        if by_table.get(t)
    }
    for t in per_table.values():
        t["hypertable_over_parquet"] = round(
            t["hypertable_bytes_per_reading"] / t["parquet_bytes_per_reading"], 1
        )
    total_parquet = sum(best["parquet_bytes"].values())
    return {
        "benchmark": "archive_throughput",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "devices": len(fleet.devices()),
        "readings": len(batch),
        "ceiling_pyarrow_local_disk": {
            "runs": ceilings,
            "best_per_cpu_s": top["written_per_cpu_s"],
        },
        "archive": {
            "runs": [{k: v for k, v in r.items() if not k.startswith("parquet_")} for r in runs]
        },
        "archived_per_cpu_s_best": best["archived_per_cpu_s"],
        "ratio_to_ceiling_per_core": round(
            best["archived_per_cpu_s"] / top["written_per_cpu_s"], 3
        ),
        "ratio_to_ceiling_wall": round(
            max(r["archived_per_s"] for r in runs) / max(c["written_per_s"] for c in ceilings), 3
        ),
        "bytes_per_reading": per_table,
        "bytes_per_reading_all_tables": {
            "parquet": round(total_parquet / len(batch), 2),
            "hypertable": round(sum(hyper.values()) / len(batch), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=2)
    result = asyncio.run(_main(parser.parse_args()))
    out = ROOT / "bench-results" / "archive.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['readings']:,} readings of {result['devices']} devices:"
        f" archive {result['archived_per_cpu_s_best']:,}/cpu-s,"
        f" pyarrow to local disk {result['ceiling_pyarrow_local_disk']['best_per_cpu_s']:,}/cpu-s"
        f" ({result['ratio_to_ceiling_per_core']} of the ceiling per core);"
        f" bytes/reading parquet {result['bytes_per_reading_all_tables']['parquet']}"
        f" vs hypertable {result['bytes_per_reading_all_tables']['hypertable']}"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
