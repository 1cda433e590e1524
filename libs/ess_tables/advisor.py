"""Index suggestions measured before anything is built (Dexter's idea, hypertable-aware).

The workload comes from `pg_stat_statements` (this database's SELECTs on our
tables), else a query log, else our known query shapes. `pg_qualstats` adds
how often each column was really filtered on; it does not see the quals below
TimescaleDB's ChunkAppend node, and what it records on a chunk is counted for
the chunk's hypertable. Each candidate is created as a *hypothetical* index
(HypoPG) on the table and on every chunk, since the planner plans chunks, not
the hypertable, and each query's generic plan is costed with and without it.
Every missing extension narrows what is done and says so in `notes`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from ess_common.db import quote_ident
from ess_tables.indexes import TableInfo, list_indexes
from ess_tables.query_shapes import shapes_of
from ess_tables.workload import (
    TIME_COLUMN,
    Candidate,
    Kind,
    Query,
    candidates,
    column_usage,
    covering_index,
    is_select,
    parameter_count,
    placeholders,
    tables_in,
    why,
)

EXTENSIONS = ("pg_stat_statements", "pg_qualstats", "hypopg")
_PRELOADED = ("pg_stat_statements", "pg_qualstats")
_WHAT_IS_LOST = {
    "pg_stat_statements": "the recorded queries are not read (a --from-log file or the known"
    " query shapes are used instead)",
    "pg_qualstats": "filter counts come from query texts only, not from executions",
    "hypopg": "candidates are not costed (no hypothetical indexes): proposed unmeasured;"
    " bench cannot show the plan without an existing index",
}
HELPED = 0.8  # a query is helped when its cost falls below 80 % of what it was


@dataclass(frozen=True)
class Extensions:
    present: frozenset[str]
    notes: tuple[str, ...]

    def has(self, name: str) -> bool:
        return name in self.present


async def extensions(conn: asyncpg.Connection) -> Extensions:
    """Which of the index manager's extensions work here; creates them where they can."""
    preload = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
    loaded = {lib.strip().strip('"') for lib in preload.split(",")}
    present, notes = set(), []
    for ext in EXTENSIONS:
        available = await conn.fetchval(
            "SELECT 1 FROM pg_available_extensions WHERE name = $1", ext
        )
        if not available:
            notes.append(f"{ext} is not installed on this server: {_WHAT_IS_LOST[ext]}")
            continue
        if ext in _PRELOADED and ext not in loaded:
            notes.append(f"{ext} is not in shared_preload_libraries: {_WHAT_IS_LOST[ext]}")
            continue
        try:  # `ext` comes from the fixed EXTENSIONS tuple; CREATE EXTENSION takes no parameters
            await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        except asyncpg.PostgresError as exc:
            notes.append(f"{ext} cannot be created here ({exc}): {_WHAT_IS_LOST[ext]}")
            continue
        present.add(ext)
    return Extensions(frozenset(present), tuple(notes))


async def recorded_queries(conn: asyncpg.Connection, tables: Iterable[str]) -> list[Query]:
    """This database's top-level SELECTs on our tables, from pg_stat_statements."""
    rows = await conn.fetch(
        "SELECT query, calls FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND toplevel AND query ~* '^\\s*(select|with)\\s'"
        " AND query !~* '(pg_catalog|pg_stat|_timescaledb|timescaledb_information|hypopg|"
        "pg_qualstats|information_schema|pg_class|pg_index|pg_temp)'"
        " ORDER BY calls DESC LIMIT 500"
    )
    names = list(tables)
    return [
        Query(r["query"], int(r["calls"]), "pg_stat_statements")
        for r in rows
        if is_select(r["query"]) and tables_in(r["query"], names)
    ]


async def qualstats_usage(conn: asyncpg.Connection) -> dict[str, Counter[tuple[str, Kind]]]:
    """Executed filters per table and column from pg_qualstats (chunks counted as their table)."""
    rows = await conn.fetch(
        "SELECT coalesce(p.relname, r.relname) AS tbl, a.attname AS col, o.oprname AS op,"
        " sum(q.execution_count)::bigint AS n"
        " FROM pg_qualstats() q"
        " JOIN pg_class r ON r.oid = q.lrelid"
        " JOIN pg_attribute a ON a.attrelid = q.lrelid AND a.attnum = q.lattnum"
        " JOIN pg_operator o ON o.oid = q.opno"
        " LEFT JOIN pg_inherits i ON i.inhrelid = q.lrelid"
        " LEFT JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE q.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " GROUP BY 1, 2, 3 HAVING sum(q.execution_count) > 0"  # EXPLAINs count 0
    )
    usage: dict[str, Counter[tuple[str, Kind]]] = {}
    for r in rows:
        kind: Kind | None = (
            "eq" if r["op"] == "=" else "range" if r["op"] in ("<", "<=", ">", ">=") else None
        )
        if kind is not None:
            usage.setdefault(r["tbl"], Counter())[(r["col"], kind)] += int(r["n"])
    return usage


async def _explain_function(conn: asyncpg.Connection) -> None:
    """A session-local helper: EXPLAIN's generic plan of a statement with `$n` placeholders
    (asyncpg would bind values to them, and bound values are planned as constants)."""
    await conn.execute(
        "CREATE OR REPLACE FUNCTION pg_temp.ess_generic_plan(q text) RETURNS json"
        " LANGUAGE plpgsql AS $f$ DECLARE r json; BEGIN"
        " EXECUTE 'EXPLAIN (FORMAT JSON, GENERIC_PLAN) ' || q INTO r; RETURN r; END $f$"
    )


async def sample_values(
    conn: asyncpg.Connection, table: TableInfo, window: timedelta
) -> dict[str, Any] | None:
    """Realistic values from the newest row: its device, bank, site, and a time window
    ending at it (`from`, `to`, `recent`); None when the table is empty."""
    row = await conn.fetchrow(f"SELECT * FROM {table.qualified} ORDER BY ts DESC LIMIT 1")  # noqa: S608 - catalog name, quoted
    if row is None:
        return None
    values = dict(row)
    newest = row["ts"]
    values.update({"from": newest - window, "to": newest + timedelta(seconds=1)})
    values["recent"] = newest - timedelta(minutes=5)
    return values


def bind(sql: str, table: TableInfo, values: dict[str, Any] | None) -> list[Any] | None:
    """Arguments for the statement's `$n` from `values`, or None when one cannot be inferred."""
    count = parameter_count(sql)
    if count == 0:
        return []
    if values is None:
        return None
    found = placeholders(sql, table.columns)
    args: list[Any] = []
    for n in range(1, count + 1):
        if n not in found:
            return None
        column, op = found[n]
        if column == TIME_COLUMN and op in (">", ">="):
            args.append(values["from"])
        elif column == TIME_COLUMN and op in ("<", "<="):
            args.append(values["to"])
        else:
            args.append([values[column]] if op == "= ANY" else values[column])
    return args


async def plan_of(conn: asyncpg.Connection, sql: str, args: Sequence[Any] | None) -> dict[str, Any]:
    """The planner's plan (no execution) of one SELECT, in a read-only transaction: with
    `args` as real values, or the generic plan when they could not be inferred."""
    if not is_select(sql):
        raise ValueError("only a single SELECT statement is explained")
    async with conn.transaction(readonly=True):
        if args is None:
            raw = await conn.fetchval("SELECT pg_temp.ess_generic_plan($1)", sql)
        else:
            raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    plan: dict[str, Any] = orjson.loads(raw)[0]["Plan"]
    return plan


def node_types(plan: dict[str, Any]) -> list[str]:
    """Scan and join node types, outermost first, each once (e.g. Index Scan, Seq Scan)."""
    seen: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node["Node Type"]
        if node.get("Custom Plan Provider"):
            kind = node["Custom Plan Provider"]
        if kind not in seen:
            seen.append(kind)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return seen


@contextlib.asynccontextmanager
async def hypothetical(
    conn: asyncpg.Connection, table: TableInfo, columns: Sequence[str], include: Sequence[str]
) -> AsyncIterator[None]:
    """`columns` (INCLUDE `include`) as a hypothetical index on the table and each chunk."""
    rels = [table.qualified]
    chunks = await conn.fetch(
        "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = $1",
        table.oid,
    )
    rels += [f"{quote_ident(r['nspname'])}.{quote_ident(r['relname'])}" for r in chunks]
    cols = ", ".join(quote_ident(c) for c in columns)  # catalog names only
    if include:
        cols += ") INCLUDE (" + ", ".join(quote_ident(c) for c in include)
    try:
        for rel in rels:
            await conn.fetch(
                "SELECT * FROM hypopg_create_index($1)", f"CREATE INDEX ON {rel} ({cols})"
            )
        yield
    finally:
        await conn.execute("SELECT hypopg_reset()")


@dataclass
class Measured:
    query: Query
    cost_before: float
    cost_after: float
    nodes_before: list[str]
    nodes_after: list[str]

    @property
    def helped(self) -> bool:
        return self.cost_after < self.cost_before * HELPED


@dataclass
class Suggestion:
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...]
    why: str
    covered_by: str | None = None
    measured: list[Measured] = field(default_factory=list)
    unmeasured: bool = False

    @property
    def proposed(self) -> bool:
        if self.covered_by is not None:
            return False
        return self.unmeasured or any(m.helped for m in self.measured)


@dataclass
class TableAdvice:
    table: str
    usage: dict[str, int]  # "column (eq|range)" -> calls
    suggestions: list[Suggestion]
    drop: list[str]  # indexes never scanned since the statistics were reset
    sources: list[str]


async def advise(
    conn: asyncpg.Connection,
    table: TableInfo,
    queries: Sequence[Query],
    ext: Extensions,
    window: timedelta = timedelta(hours=1),
) -> TableAdvice:
    """Candidates for `table` from `queries`, costed with values of its newest row and a
    time range of `window` (what a dashboard reads)."""
    cols = {table.name: table.columns}
    mine = [q for q in queries if tables_in(q.sql, [table.name])]
    usage = column_usage(mine, cols).get(table.name, Counter())
    sources = sorted({q.source for q in mine})
    if ext.has("pg_qualstats"):
        executed = (await qualstats_usage(conn)).get(table.name)
        if executed:
            usage = executed + Counter({k: v for k, v in usage.items() if k not in executed})
            sources.append("pg_qualstats")
    existing = await list_indexes(conn, table)
    by_cols = {i.name: (i.columns, i.include) for i in existing if i.valid}
    values = await sample_values(conn, table, window)
    if ext.has("hypopg"):
        await _explain_function(conn)
    out = []
    for cand in candidates(mine, cols):
        s = Suggestion(
            table.name, cand.columns, cand.include, why(cand, usage), covering_index(cand, by_cols)
        )
        if s.covered_by is None:
            if ext.has("hypopg"):
                s.measured = await _measure(conn, table, cand, values)
            else:
                s.unmeasured = True
        out.append(s)
    return TableAdvice(
        table.name,
        {f"{c} ({k})": n for (c, k), n in usage.most_common()},
        out,
        [i.name for i in existing if i.unused],
        sources,
    )


async def _measure(
    conn: asyncpg.Connection, table: TableInfo, cand: Candidate, values: dict[str, Any] | None
) -> list[Measured]:
    args = [bind(q.sql, table, values) for q in cand.queries]
    before = [await plan_of(conn, q.sql, a) for q, a in zip(cand.queries, args, strict=True)]
    async with hypothetical(conn, table, cand.columns, cand.include):
        after = [await plan_of(conn, q.sql, a) for q, a in zip(cand.queries, args, strict=True)]
    return [
        Measured(q, b["Total Cost"], a["Total Cost"], node_types(b), node_types(a))
        for q, b, a in zip(cand.queries, before, after, strict=True)
    ]


def known_workload(table: TableInfo) -> list[Query]:
    return [s.query() for s in shapes_of(table.name)]
