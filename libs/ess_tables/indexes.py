"""Indexes of our tables: read from the catalog, created and dropped without stopping ingest.

Every name an operator types is checked twice before any DDL exists: it must
be a plain identifier, and it must be found in the catalog (looked up as a
query parameter) as one of our tables, one of its columns, or one of its
indexes. The DDL is then written from the catalog's names, quoted as
identifiers; a refusal runs nothing but those catalog reads.

On a hypertable `CREATE INDEX ... WITH (timescaledb.transaction_per_chunk)`
builds chunk by chunk, each in its own transaction, so no lock is held on the
whole table for the build; on a plain table `CREATE INDEX CONCURRENTLY`. A
build that fails or is interrupted leaves an invalid index, which `create`
drops on the spot; `list` shows any that remain (valid = False) and `drop`
removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from ess_common.db import quote_ident
from ess_common.model import TABLES
from ess_tables.schema import schema_indexes

log = logging.getLogger(__name__)

_PLAIN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
MAX_COLUMNS = 8


class IndexRefusedError(Exception):
    """The request names something that is not ours or not there; nothing was run."""


def plain_identifier(what: str, text: str) -> str:
    if not _PLAIN.fullmatch(text):
        raise IndexRefusedError(
            f"{what} {text!r} is not a plain identifier (lowercase letters, digits, '_',"
            " at most 63): refused, nothing was run"
        )
    return text


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    oid: int
    columns: tuple[str, ...]
    hypertable: bool

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


@dataclass(frozen=True)
class IndexInfo:
    table: str
    name: str
    columns: tuple[str, ...]
    include: tuple[str, ...]
    definition: str
    unique: bool
    constraint: str | None  # the constraint it backs (the natural key), if any
    schema_owned: bool  # made by the migrations (or TimescaleDB), not by an operator
    valid: bool
    chunks: int  # chunk indexes summed into the figures (0 on a plain table)
    size_bytes: int
    scans: int
    tuples_read: int

    @property
    def unused(self) -> bool:
        return (
            self.scans == 0
            and not self.unique
            and self.constraint is None
            and not self.schema_owned
        )


async def table_info(conn: asyncpg.Connection, table: str) -> TableInfo:
    """One of our tables as the catalog has it, or IndexRefusedError."""
    plain_identifier("table", table)
    row = await conn.fetchrow(
        "SELECT c.oid, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = $1 AND n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
        table,
    )
    if row is None or table not in TABLES:
        raise IndexRefusedError(
            f"table {table!r} is not one of ours ({', '.join(TABLES)}) in this database:"
            " refused, nothing was run"
        )
    cols = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        row["oid"],
    )
    hyper = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    )
    if hyper:
        hyper = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = $1 AND hypertable_name = $2)",
            row["nspname"],
            table,
        )
    return TableInfo(
        row["nspname"], table, row["oid"], tuple(r["attname"] for r in cols), bool(hyper)
    )


async def our_tables(conn: asyncpg.Connection) -> list[TableInfo]:
    present = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " AND relkind IN ('r', 'p') AND relname = ANY($1::text[])",
        list(TABLES),
    )
    names = {r["relname"] for r in present}
    return [await table_info(conn, t) for t in TABLES if t in names]


_INDEXES = """
SELECT ic.relname AS name, pg_get_indexdef(ix.indexrelid) AS definition,
       ix.indisunique AS is_unique, ix.indisvalid AS valid,
       (SELECT k.conname FROM pg_constraint k WHERE k.conindid = ix.indexrelid LIMIT 1)
           AS constraint_name,
       ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS columns,
       ix.indnkeyatts AS nkey, pg_relation_size(ix.indexrelid) AS size,
       coalesce(s.idx_scan, 0) AS scans, coalesce(s.idx_tup_read, 0) AS tuples
FROM pg_index ix JOIN pg_class ic ON ic.oid = ix.indexrelid
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = ix.indexrelid
WHERE ix.indrelid = $1 ORDER BY ic.relname
"""
_CHUNK_INDEXES = """
SELECT ci.hypertable_index_name AS name, count(*) AS chunks,
       sum(pg_relation_size(x.oid)) AS size, bool_and(pi.indisvalid) AS valid,
       sum(coalesce(s.idx_scan, 0)) AS scans, sum(coalesce(s.idx_tup_read, 0)) AS tuples
FROM _timescaledb_catalog.chunk_index ci
JOIN _timescaledb_catalog.chunk c ON c.id = ci.chunk_id AND NOT c.dropped
JOIN _timescaledb_catalog.hypertable h ON h.id = ci.hypertable_id
JOIN pg_namespace n ON n.nspname = c.schema_name
JOIN pg_class x ON x.relname = ci.index_name AND x.relnamespace = n.oid
JOIN pg_index pi ON pi.indexrelid = x.oid
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.oid
WHERE h.schema_name = $1 AND h.table_name = $2
GROUP BY 1
"""


async def list_indexes(conn: asyncpg.Connection, table: TableInfo) -> list[IndexInfo]:
    """The table's indexes; on a hypertable size, scans and tuples are summed over chunks."""
    per_chunk = {}
    if table.hypertable:
        per_chunk = {
            r["name"]: r for r in await conn.fetch(_CHUNK_INDEXES, table.schema, table.name)
        }
    found, owned = [], schema_indexes()
    for r in await conn.fetch(_INDEXES, table.oid):
        chunk = per_chunk.get(r["name"])
        found.append(
            IndexInfo(
                table=table.name,
                name=r["name"],
                columns=tuple(r["columns"][: r["nkey"]]),
                include=tuple(r["columns"][r["nkey"] :]),
                definition=r["definition"],
                unique=r["is_unique"],
                constraint=r["constraint_name"],
                schema_owned=r["name"] in owned or r["constraint_name"] is not None,
                valid=r["valid"] and (chunk is None or bool(chunk["valid"])),
                chunks=int(chunk["chunks"]) if chunk else 0,
                size_bytes=int(r["size"]) + (int(chunk["size"]) if chunk else 0),
                scans=int(r["scans"]) + (int(chunk["scans"]) if chunk else 0),
                tuples_read=int(r["tuples"]) + (int(chunk["tuples"]) if chunk else 0),
            )
        )
    return found


async def chunk_count(conn: asyncpg.Connection, table: TableInfo) -> int:
    if not table.hypertable:
        return 0
    return int(
        await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = $1", table.oid)
    )


@dataclass(frozen=True)
class CreatePlan:
    table: TableInfo
    columns: tuple[str, ...]
    include: tuple[str, ...]
    name: str
    chunks: int

    @property
    def sql(self) -> str:
        cols = ", ".join(quote_ident(c) for c in self.columns)
        target = f"{quote_ident(self.name)} ON {self.table.qualified} ({cols})"
        if self.include:
            target += f" INCLUDE ({', '.join(quote_ident(c) for c in self.include)})"
        if self.table.hypertable:
            return f"CREATE INDEX {target} WITH (timescaledb.transaction_per_chunk)"
        return f"CREATE INDEX CONCURRENTLY {target}"


def index_name(table: str, columns: Sequence[str], covering: bool = False) -> str:
    tail = "_cov_idx" if covering else "_idx"
    name = f"{table}_{'_'.join(columns)}{tail}"
    if len(name) > 63:
        name = f"{table}_{'_'.join(c[:6] for c in columns)}"[: 63 - len(tail)] + tail
    return name


async def plan_create(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[str],
    include: Sequence[str] = (),
) -> CreatePlan:
    """The checked request, or IndexRefusedError saying why."""
    for column in (*columns, *include):
        plain_identifier("column", column)
    info = await table_info(conn, table)
    if not columns or len(columns) > MAX_COLUMNS or len(include) > MAX_COLUMNS:
        raise IndexRefusedError(
            f"give 1 to {MAX_COLUMNS} columns (and at most {MAX_COLUMNS} to include):"
            " refused, nothing was run"
        )
    if len(set(columns) | set(include)) != len(columns) + len(include):
        raise IndexRefusedError("a column is named twice: refused, nothing was run")
    unknown = [c for c in (*columns, *include) if c not in info.columns]
    if unknown:
        raise IndexRefusedError(
            f"{table} has no column {', '.join(map(repr, unknown))}: refused, nothing was run"
        )
    name = index_name(table, columns, bool(include))
    for existing in await list_indexes(conn, info):
        if existing.columns == tuple(columns) and existing.include == tuple(include):
            raise IndexRefusedError(
                f"{existing.name} already indexes {table} ({', '.join(columns)}): nothing to do"
            )
        if existing.name == name:
            raise IndexRefusedError(
                f"an index named {name} already exists on {table} with other columns"
                f" ({existing.definition}): drop it first; refused, nothing was run"
            )
    return CreatePlan(info, tuple(columns), tuple(include), name, await chunk_count(conn, info))


@dataclass(frozen=True)
class BuildProgress:
    chunks_done: int
    chunks_total: int
    current: str | None  # the relation being indexed now
    phase: str | None
    blocks_done: int
    blocks_total: int


ProgressCallback = Callable[[BuildProgress], None]


async def create_index(
    conn: asyncpg.Connection,
    watch: asyncpg.Connection,
    plan: CreatePlan,
    progress: ProgressCallback | None = None,
    poll_s: float = 0.5,
) -> IndexInfo:
    """Build the index; `watch` (a second connection) reports progress and cleans up.

    On any failure or cancellation the half-built (invalid) index is dropped
    before the error propagates.
    """
    pid = conn.get_server_pid()
    if await _index_exists(watch, plan):  # built since the plan was made: not ours to clean
        raise IndexRefusedError(f"an index named {plan.name} exists already: nothing was run")
    build = asyncio.ensure_future(conn.execute(plan.sql, timeout=None))
    try:
        while not build.done():
            await asyncio.wait({build}, timeout=poll_s)
            if progress is not None and not build.done():
                progress(await _progress(watch, plan, pid))
        await build
    except BaseException:
        build.cancel()
        with contextlib.suppress(BaseException):
            await build
        await _drop_leftover(watch, plan)
        raise
    info = next(i for i in await list_indexes(watch, plan.table) if i.name == plan.name)
    if progress is not None:
        progress(BuildProgress(info.chunks, plan.chunks, None, "done", 0, 0))
    return info


async def _progress(watch: asyncpg.Connection, plan: CreatePlan, pid: int) -> BuildProgress:
    row = await watch.fetchrow(
        "SELECT relid::regclass::text AS rel, phase, blocks_done, blocks_total"
        " FROM pg_stat_progress_create_index WHERE pid = $1",
        pid,
    )
    done = 0
    if plan.table.hypertable:
        done = int(
            await watch.fetchval(
                "SELECT count(*) FROM _timescaledb_catalog.chunk_index ci"
                " JOIN _timescaledb_catalog.hypertable h ON h.id = ci.hypertable_id"
                " WHERE h.schema_name = $1 AND h.table_name = $2"
                " AND ci.hypertable_index_name = $3",
                plan.table.schema,
                plan.table.name,
                plan.name,
            )
        )
    return BuildProgress(
        done,
        plan.chunks,
        row["rel"] if row else None,
        row["phase"] if row else None,
        int(row["blocks_done"] or 0) if row else 0,
        int(row["blocks_total"] or 0) if row else 0,
    )


async def _index_exists(watch: asyncpg.Connection, plan: CreatePlan) -> bool:
    found = await watch.fetchval(
        "SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = $2::regnamespace",
        plan.name,
        plan.table.schema,
    )
    return found is not None


async def _drop_leftover(watch: asyncpg.Connection, plan: CreatePlan) -> None:
    """Drop what this build left: the index it made, if it is not valid."""
    left = await watch.fetchval(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = $1 AND c.relnamespace = $2::regnamespace",
        plan.name,
        plan.table.schema,
    )
    if left:
        log.warning("build of %s did not finish: dropping the invalid index", plan.name)
        await watch.execute(
            f"DROP INDEX IF EXISTS {quote_ident(plan.table.schema)}.{quote_ident(plan.name)}",
            timeout=120,
        )


@dataclass(frozen=True)
class DropPlan:
    table: TableInfo
    index: IndexInfo

    @property
    def sql(self) -> str:
        name = f"{quote_ident(self.table.schema)}.{quote_ident(self.index.name)}"
        # DROP INDEX CONCURRENTLY is not supported on hypertables; it is brief there.
        return f"DROP INDEX {name}" if self.table.hypertable else f"DROP INDEX CONCURRENTLY {name}"


async def plan_drop(conn: asyncpg.Connection, name: str) -> DropPlan:
    plain_identifier("index", name)
    table = await conn.fetchval(
        "SELECT t.relname FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid"
        " JOIN pg_class t ON t.oid = ix.indrelid"
        " WHERE i.relname = $1 AND i.relnamespace = current_schema()::regnamespace",
        name,
    )
    if table is None or table not in TABLES:
        raise IndexRefusedError(
            f"{name!r} is not an index of our tables ({', '.join(TABLES)}):"
            " refused, nothing was run"
        )
    info = await table_info(conn, table)
    index = next(i for i in await list_indexes(conn, info) if i.name == name)
    if index.constraint is not None:
        raise IndexRefusedError(
            f"{name} backs the constraint {index.constraint} (the natural key the sinks'"
            " idempotent writes rely on): refused, nothing was run"
        )
    if index.schema_owned:
        raise IndexRefusedError(
            f"{name} is part of the schema (its migrations or TimescaleDB made it; the project's"
            " own readers use it and `essctl db migrate` would build it again):"
            " refused, nothing was run"
        )
    return DropPlan(info, index)


async def index_relations(conn: asyncpg.Connection, table: TableInfo, name: str) -> list[int]:
    """The oids of index `name` of `table` and, on a hypertable, of its chunks' copies."""
    plain_identifier("index", name)
    if name not in {i.name for i in await list_indexes(conn, table)}:
        raise IndexRefusedError(
            f"{name!r} is not an index of {table.name}: refused, nothing was run"
        )
    oids = [
        await conn.fetchval(
            "SELECT c.oid FROM pg_class c WHERE c.relname = $1"
            " AND c.relnamespace = $2::regnamespace",
            name,
            table.schema,
        )
    ]
    if table.hypertable:
        rows = await conn.fetch(
            "SELECT x.oid FROM _timescaledb_catalog.chunk_index ci"
            " JOIN _timescaledb_catalog.chunk c ON c.id = ci.chunk_id AND NOT c.dropped"
            " JOIN _timescaledb_catalog.hypertable h ON h.id = ci.hypertable_id"
            " JOIN pg_namespace n ON n.nspname = c.schema_name"
            " JOIN pg_class x ON x.relname = ci.index_name AND x.relnamespace = n.oid"
            " WHERE h.schema_name = $1 AND h.table_name = $2 AND ci.hypertable_index_name = $3",
            table.schema,
            table.name,
            name,
        )
        oids += [r["oid"] for r in rows]
    return [int(o) for o in oids]


async def drop_index(conn: asyncpg.Connection, plan: DropPlan) -> None:
    await conn.execute(plan.sql, timeout=None)
