"""Benchmark: the typical queries before and after the indexes `essctl index suggest` proposes.

    python benchmarks/index_manager.py [--days 7] [--keep]

Needs the local stack (`make up`). Writes bench-results/indexes.json.

A database of its own on the "local" cluster (dropped at the end) gets seven
days of site2 at 1 Hz (17 racks x 604,800 s, about 10.3 M rack rows),
generated with SQL generate_series one hour at a time, then VACUUM ANALYZE
(as autovacuum would leave chunks no longer written). Then:

1. The known query shapes (dashboard per-device and per-bank time ranges,
   essctl loss, cache rebuild) are timed over the last hour and the last day
   of the data, median of 5 runs.
2. `suggest` (known workload, HypoPG costing) picks the indexes; each is built
   with `timescaledb.transaction_per_chunk` while an ingest task keeps
   writing new rows (1 s of all 17 racks per INSERT), and the ingest rate
   during the builds is reported next to the rate without a build.
3. The rows ingested meanwhile are deleted again (same data before and
   after), and the same queries are timed again; the ratio is before/after.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from ess_common.settings import CommonSettings, load_settings
from ess_tables.advisor import Suggestion, advise, extensions, known_workload, sample_values
from ess_tables.index_bench import Timing, arguments, db_speedup, speedup, time_query
from ess_tables.indexes import create_index, plan_create, table_info
from ess_tables.query_shapes import shapes
from ess_tables.schema import migrate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results" / "indexes.json"
BANKS = {1: 9, 2: 8}  # site2 of the seed fleet: 17 racks
START = datetime(2026, 3, 1, tzinfo=UTC)
INGEST_S = 10.0


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_ROWS = """
INSERT INTO rack (device_id, site, bank_id, rack_id, ts, read_at, quality, soc_pct, soh_pct,
                  voltage_v, current_a, cell_v_max, cell_v_min, cell_v_avg, module_t_max_c,
                  module_t_min_c, module_t_avg_c, modules, state, alarm_bits, warning_bits)
SELECT 'site2/bank' || b || '/rack' || r, 'site2', b, r, t, t + interval '80 ms', 0,
       50 + 30 * sin(extract(epoch FROM t) / 3600 + r), 97.5, 800 + r, 20 * cos(r + b),
       3.35, 3.30, 3.32, 31 + r % 5, 24, 27, 17, 3, 0, 0
FROM (VALUES (1), (2)) AS banks(b),
     generate_series(1, 9) r,
     generate_series($1::timestamptz, $2::timestamptz - interval '1 s', interval '1 s') t
WHERE r <= CASE b WHEN 1 THEN 9 ELSE 8 END
"""


async def _generate(conn: asyncpg.Connection, days: int) -> dict[str, Any]:
    started = time.perf_counter()
    hours = days * 24
    for h in range(hours):
        lo = START + timedelta(hours=h)
        await conn.execute(_ROWS, lo, lo + timedelta(hours=1))
        if (h + 1) % 12 == 0:
            rate = (h + 1) * 17 * 3600 / (time.perf_counter() - started)
            _log(f"generated {h + 1}/{hours} h ({rate:,.0f} rows/s)")
    generated = time.perf_counter() - started
    _log("VACUUM ANALYZE rack")
    await conn.execute("VACUUM ANALYZE rack")
    return {"rows": hours * 3600 * 17, "generate_seconds": round(generated, 1)}


async def _ingest(dsn: str, start: datetime, stop: asyncio.Event) -> dict[str, Any]:
    """New rows after the generated range, one second of all racks per INSERT, until stopped."""
    conn = await asyncpg.connect(dsn)
    rows, t0, at = 0, time.perf_counter(), start
    try:
        while not stop.is_set():
            await conn.execute(_ROWS, at, at + timedelta(seconds=1))
            rows += 17
            at += timedelta(seconds=1)
    finally:
        await conn.close()
    took = time.perf_counter() - t0
    return {"rows": rows, "seconds": round(took, 2), "rows_per_s": round(rows / took, 1)}


async def _ingest_for(dsn: str, start: datetime, seconds: float) -> dict[str, Any]:
    stop = asyncio.Event()
    task = asyncio.create_task(_ingest(dsn, start, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def _time_all(conn: asyncpg.Connection, values: dict[str, Any]) -> list[Timing]:
    return [await time_query(conn, s.sql, arguments(s, values), runs=5) for s in shapes("rack")]


async def _build_all(
    conn: asyncpg.Connection, dsn: str, chosen: list[Suggestion]
) -> list[dict[str, Any]]:
    built = []
    watch = await asyncpg.connect(dsn)
    try:
        for s in chosen:
            plan = await plan_create(conn, "rack", s.columns, s.include)
            t0 = time.perf_counter()
            info = await create_index(conn, watch, plan)
            built.append(
                {
                    "index": info.name,
                    "sql": plan.sql,
                    "chunks": info.chunks,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "size_mb": round(info.size_bytes / 1048576, 1),
                }
            )
            _log(f"built {info.name} in {built[-1]['seconds']} s, {built[-1]['size_mb']} MB")
    finally:
        await watch.close()
    return built


async def run(days: int, keep: bool) -> dict[str, Any]:
    settings = load_settings(CommonSettings)
    base = settings.dsn("local").get_secret_value().rsplit("/", 1)[0]
    name = f"bench_idx_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{base}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{base}/{name}"
    try:
        conn = await asyncpg.connect(dsn, command_timeout=3600)
        await migrate(conn)
        data = await _generate(conn, days)
        table = await table_info(conn, "rack")
        values = await sample_values(conn, table, timedelta(hours=1))
        assert values is not None
        wide = {**values, "from": values["to"] - timedelta(hours=24)}  # a day's trend
        _log("timing the query shapes before")
        before = await _time_all(conn, values) + await _time_all(conn, wide)
        ext = await extensions(conn)
        advice = await advise(conn, table, known_workload(table), ext)
        chosen = [s for s in advice.suggestions if s.proposed]
        _log(f"suggested: {[(s.columns, s.include) for s in chosen]}")
        next_ts = START + timedelta(days=days, hours=1)
        _log("ingest without a build")
        quiet = await _ingest_for(dsn, next_ts, INGEST_S)
        next_ts += timedelta(days=1)
        stop = asyncio.Event()
        ingest = asyncio.create_task(_ingest(dsn, next_ts, stop))
        try:
            built = await _build_all(conn, dsn, chosen)
        finally:
            stop.set()
            during = await ingest
        # Same data before and after: the rows ingested meanwhile go again.
        await conn.execute("DELETE FROM rack WHERE ts >= $1", START + timedelta(days=days))
        await conn.execute("VACUUM ANALYZE rack")
        _log("timing the query shapes after")
        after = await _time_all(conn, values) + await _time_all(conn, wide)
        await conn.close()
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    names = [f"{s.name} [1 h]" for s in shapes("rack")] + [
        f"{s.name} [24 h]" for s in shapes("rack")
    ]
    queries = [
        {
            "query": name,
            "before_ms": b.median_ms,
            "after_ms": a.median_ms,
            "speedup": speedup(b, a),
            "db_before_ms": b.db_ms,
            "db_after_ms": a.db_ms,
            "db_speedup": db_speedup(b, a),
            "rows": a.rows,
            "plan_before": b.nodes,
            "plan_after": a.nodes,
            "indexes_after": a.index_names,
        }
        for name, b, a in zip(names, before, after, strict=True)
    ]
    return {
        "benchmark": "index_manager",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "data": {"site": "site2", "racks": 17, "days": days, **data},
        "extensions": sorted(ext.present),
        "suggested": [{"columns": s.columns, "include": s.include, "why": s.why} for s in chosen],
        "builds": built,
        "ingest_rows_per_s": {"without_build": quiet, "during_build": during},
        "queries": queries,
    }


def _cpus() -> int:
    return os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    result = asyncio.run(run(args.days, args.keep))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    for q in result["queries"]:
        print(
            f"{q['before_ms']:>10.2f} ms -> {q['after_ms']:>9.2f} ms"
            f"  x{q['speedup']:<6} {q['query']}"
        )
    ing = result["ingest_rows_per_s"]
    print(
        f"ingest: {ing['without_build']['rows_per_s']:,} rows/s without a build,"
        f" {ing['during_build']['rows_per_s']:,} rows/s during the builds"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
