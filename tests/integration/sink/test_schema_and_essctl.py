"""`essctl db migrate`: idempotent, hypertables on TimescaleDB, plain tables (and one
log line saying so) on PostgreSQL without it; one-line errors and exit code 2 on bad args."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from ess_common.model import TABLES, Table
from ess_common.synthetic import readings, seed_fleet
from ess_tables.rows import to_row
from ess_tables.writer import write_batch
from helpers.common import DatabaseFactory
from helpers.disposable import disposable_postgres
from helpers.sinkdata import recent_slot

ESSCTL = [sys.executable, "-m", "ess_ctl"]
# Every migration, in order: a new one must be added here on purpose.
MIGRATIONS = ["0001_wide_tables.sql", "0002_fleet_registry.sql"]


async def _essctl(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *ESSCTL,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_migrate_creates_hypertables_once_and_reports_in_json(
    make_database: DatabaseFactory,
) -> None:
    dsn = await make_database("cloud")
    code, out, err = await _essctl(
        "db", "migrate", "--cluster", "cloud", "--json", ESS_DB_CLOUD_DSN=dsn
    )
    assert code == 0, err
    first = orjson.loads(out)["clusters"]["cloud"]
    assert first["ok"] is True
    assert first["applied"] == MIGRATIONS
    assert first["version"] == len(MIGRATIONS)
    assert first["timescaledb"]
    assert "skipped" in err  # the Apache edition: licence-only features skipped, with a log line

    code, out, _ = await _essctl(
        "db", "migrate", "--cluster", "cloud", "--json", ESS_DB_CLOUD_DSN=dsn
    )
    assert code == 0
    again = orjson.loads(out)["clusters"]["cloud"]
    assert again["applied"] == []
    assert again["version"] == len(MIGRATIONS)

    conn = await asyncpg.connect(dsn)
    try:
        hypertables = {
            r["hypertable_name"]: r["interval"]
            for r in await conn.fetch(
                "SELECT hypertable_name, time_interval AS interval"
                " FROM timescaledb_information.dimensions"
            )
        }
        versions = await conn.fetch("SELECT version, name FROM ess_schema_version")
    finally:
        await conn.close()
    assert hypertables == {
        "bank": timedelta(days=1),
        "rack": timedelta(hours=6),
        "pcs": timedelta(days=1),
        "etc": timedelta(days=1),
    }
    assert [(r["version"], r["name"]) for r in versions] == list(enumerate(MIGRATIONS, 1))


async def test_bad_arguments_are_one_line_and_exit_2() -> None:
    for args in (
        ("db", "migrate", "--cluster", "mars"),
        ("db", "migrate"),
        ("db",),
        ("nonsense",),
    ):
        code, out, err = await _essctl(*args)
        assert code == 2, args
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("essctl"), err


async def test_an_unreachable_cluster_is_named_and_exits_1(make_database: DatabaseFactory) -> None:
    dsn = await make_database("local")
    code, out, _ = await _essctl(
        "db",
        "migrate",
        "--cluster",
        "all",
        "--timeout",
        "2",
        ESS_DB_LOCAL_DSN=dsn,
        ESS_DB_CLOUD_DSN="postgresql://ess@127.0.0.1:1/ess",
    )
    assert code == 1
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["local"].startswith(f"schema version {len(MIGRATIONS)}")
    assert lines["cloud"].startswith("FAILED - cannot connect")


def test_plain_postgresql_gets_normal_tables_and_the_sink_writes_there(tmp_path: Path) -> None:
    with disposable_postgres(tmp_path, timescaledb=False) as plain:
        env = {**os.environ, "ESS_DB_LOCAL_DSN": plain.dsn}
        cmd = [*ESSCTL, "db", "migrate", "--cluster", "local", "--json"]
        first = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert first.returncode == 0, first.stderr
        report = orjson.loads(first.stdout)["clusters"]["local"]
        assert report["timescaledb"] is None
        assert report["applied"] == MIGRATIONS
        said = [line for line in first.stderr.splitlines() if "plain PostgreSQL" in line]
        assert len(said) == 1, first.stderr
        again = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert again.returncode == 0
        assert orjson.loads(again.stdout)["clusters"]["local"]["applied"] == []

        async def write_twice() -> tuple[int, int, dict[str, str]]:
            sample = list(readings(seed_fleet(), recent_slot(1), seconds=2))
            rows: dict[Table, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
            for reading in sample:
                rows[reading.table].append(to_row(reading))
            conn = await asyncpg.connect(plain.dsn)
            try:
                first = await write_batch(conn, rows)
                second = await write_batch(conn, rows)
                kinds = await conn.fetch(
                    "SELECT relname, relkind::text FROM pg_class WHERE relname = ANY($1)",
                    list(TABLES),
                )
            finally:
                await conn.close()
            return (
                sum(r.inserted for r in first.results.values()),
                sum(r.inserted for r in second.results.values()),
                {r["relname"]: r["relkind"] for r in kinds},
            )

        inserted, reinserted, kinds = asyncio.run(write_twice())
        assert inserted == 2 * len(seed_fleet().devices())
        assert reinserted == 0  # first write wins on plain tables too
        assert kinds == dict.fromkeys(TABLES, "r")  # ordinary tables, no hypertables
