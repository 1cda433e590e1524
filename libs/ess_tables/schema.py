"""Schema migrations, idempotent, recorded in `ess_schema_version`.

TimescaleDB is used when the server has it (hypertables, chunking by time) and
plain PostgreSQL tables otherwise, with one log line saying which. Features of
the Timescale license (compression, retention, continuous aggregates) are
applied only where the server reports that license.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources

import asyncpg

from ess_common.model import TABLES, Table

log = logging.getLogger(__name__)

# Chunks sized so one chunk and its indexes stay well inside memory at fleet scale:
# racks are ~80 % of all rows (54 racks in the seed fleet, thousands at scale).
CHUNK_INTERVAL: dict[Table, timedelta] = {
    "bank": timedelta(days=1),
    "rack": timedelta(hours=6),
    "pcs": timedelta(days=1),
    "etc": timedelta(days=1),
}
_LOCK_KEY = 0x455353  # advisory lock: two sinks starting at once migrate one at a time


@dataclass(frozen=True)
class SchemaPolicies:
    """Timescale-license features; applied only where the server has that license."""

    compress_after: timedelta = timedelta(days=7)
    retention: timedelta | None = None  # None: keep everything


@dataclass(frozen=True)
class SchemaReport:
    version: int
    applied: tuple[str, ...]
    timescaledb: str | None  # extension version, None on plain PostgreSQL
    license: str | None
    licensed_features: tuple[str, ...] = ()  # what was applied because the license allows it


def _migrations() -> list[tuple[int, str, str]]:
    files = sorted(
        (f for f in resources.files("ess_tables.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    return [(int(f.name.split("_", 1)[0]), f.name, f.read_text()) for f in files]


_CREATES_INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON", re.IGNORECASE)


def schema_indexes() -> frozenset[str]:
    """Indexes the schema owns: those its migrations create (`migrate` builds them again)
    and TimescaleDB's default time index of each hypertable."""
    created = {m.group(1) for _, _, sql in _migrations() for m in _CREATES_INDEX.finditer(sql)}
    return frozenset(created | {f"{t}_ts_idx" for t in TABLES})


async def migrate(conn: asyncpg.Connection, policies: SchemaPolicies | None = None) -> SchemaReport:
    """Bring the schema to the latest version; safe to run any number of times, concurrently."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        tsdb = await _ensure_timescaledb(conn)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ess_schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM ess_schema_version")}
        applied: list[str] = []
        for version, name, sql in _migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO ess_schema_version (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(name)
            log.info("applied migration %s", name)
        features: tuple[str, ...] = ()
        license_ = None
        if tsdb is not None:
            await _hypertables(conn)
            license_ = await _license(conn)
            if license_ == "timescale":
                features = await apply_licensed_policies(conn, policies or SchemaPolicies())
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM ess_schema_version")
        return SchemaReport(int(current), tuple(applied), tsdb, license_, features)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _ensure_timescaledb(conn: asyncpg.Connection) -> str | None:
    """The extension's version, or None (one log line) when tables must be plain PostgreSQL."""
    installed: str | None = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    if installed:
        return installed
    available = await conn.fetchval(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if not available:
        log.warning("timescaledb is not available on this server: using plain PostgreSQL tables")
        return None
    if await _preloaded(conn) is False:  # loading it now would end the session (FATAL)
        log.warning(
            "timescaledb is installed but not in shared_preload_libraries:"
            " using plain PostgreSQL tables"
        )
        return None
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as exc:  # e.g. not allowed to create it
        log.warning(
            "timescaledb is installed but cannot be loaded (%s): using plain PostgreSQL tables",
            str(exc).splitlines()[0],
        )
        return None
    version: str = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    return version


async def _preloaded(conn: asyncpg.Connection) -> bool | None:
    """Whether the server preloads timescaledb; None when this role may not read that."""
    try:
        value: str = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
    except asyncpg.InsufficientPrivilegeError:
        return None
    return "timescaledb" in (lib.strip().strip('"') for lib in value.split(","))


async def _hypertables(conn: asyncpg.Connection) -> None:
    for table in TABLES:
        # Table names come from the fixed TABLES tuple, passed as parameters anyway.
        await conn.execute(
            "SELECT create_hypertable($1::regclass, by_range('ts', $2::interval),"
            " if_not_exists => true, migrate_data => true)",
            table,
            CHUNK_INTERVAL[table],
        )


async def _license(conn: asyncpg.Connection) -> str | None:
    value: str | None = await conn.fetchval("SELECT current_setting('timescaledb.license', true)")
    if value != "timescale":
        log.info(
            "timescaledb license is %r: compression, retention policies and continuous"
            " aggregates are skipped (they need the Timescale license)",
            value,
        )
    return value


async def apply_licensed_policies(
    conn: asyncpg.Connection, policies: SchemaPolicies
) -> tuple[str, ...]:
    """Compression (and retention if configured) on every table; idempotent.

    Only called where `timescaledb.license` is 'timescale'. Compressed chunks
    still accept `INSERT ... ON CONFLICT DO NOTHING`, so replays stay possible.
    """
    applied: list[str] = []
    for table in TABLES:
        # ALTER TABLE takes no parameters; `table` comes from the fixed TABLES tuple.
        await conn.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'device_id',"
            " timescaledb.compress_orderby = 'ts DESC')"
        )
        await conn.execute(
            "SELECT add_compression_policy($1::regclass, $2::interval, if_not_exists => true)",
            table,
            policies.compress_after,
        )
        applied.append(f"compression:{table}")
        if policies.retention is not None:
            await conn.execute(
                "SELECT add_retention_policy($1::regclass, $2::interval, if_not_exists => true)",
                table,
                policies.retention,
            )
            applied.append(f"retention:{table}")
    log.info(
        "timescale license: compression after %s%s; no continuous aggregates are defined",
        policies.compress_after,
        f", retention {policies.retention}" if policies.retention else ", no retention policy",
    )
    return tuple(applied)


async def is_hypertable(conn: asyncpg.Connection, table: Table) -> bool:
    try:
        found = await conn.fetchval(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = $1",
            table,
        )
    except asyncpg.UndefinedTableError:
        return False
    return bool(found)
