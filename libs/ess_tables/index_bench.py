"""Timing the known query shapes on real data, without and with one index.

The values come from the table's newest row (its device, bank, site and a time
window ending at it), so every shape reads rows that exist. Each query runs a
few times and the median is kept; its plan's node types are recorded so an
operator sees, e.g., `Index Scan` replace `Seq Scan` or a scan of the site index.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from ess_tables.advisor import node_types
from ess_tables.query_shapes import Shape


@dataclass(frozen=True)
class Timing:
    median_ms: float  # end to end: the rows fetched and decoded by the client
    db_ms: float  # the server's execution alone (EXPLAIN ANALYZE), no rows sent
    rows: int
    nodes: list[str]
    index_names: list[str]


def arguments(shape: Shape, values: dict[str, Any]) -> list[Any]:
    return [values[name] for name in shape.params]


async def time_query(
    conn: asyncpg.Connection, sql: str, args: Sequence[Any], runs: int = 5
) -> Timing:
    """Medians of `runs` executions (after one warm-up), end to end and in the server,
    and the plan's nodes."""
    raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    plan = orjson.loads(raw)[0]["Plan"]
    await conn.fetch(sql, *args)
    took, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = len(await conn.fetch(sql, *args))
        took.append((time.perf_counter() - started) * 1000)
    in_server = []
    for _ in range(runs):
        analyzed = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, *args)
        in_server.append(float(orjson.loads(analyzed)[0]["Execution Time"]))
    return Timing(
        round(statistics.median(took), 2),
        round(statistics.median(in_server), 2),
        rows,
        node_types(plan),
        _index_names(plan),
    )


def _index_names(plan: dict[str, Any]) -> list[str]:
    names: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            names.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return sorted(names)


@contextlib.asynccontextmanager
async def hidden(conn: asyncpg.Connection, relations: Sequence[int]) -> AsyncIterator[None]:
    """The planner of this session does not see `relations` (HypoPG's hypopg_hide_index):
    an existing index is timed "without" with no DDL and no lock, for nobody else."""
    try:
        for oid in relations:
            await conn.fetchval("SELECT hypopg_hide_index($1)", oid)
        yield
    finally:
        await conn.fetchval("SELECT hypopg_unhide_all_indexes()")


def speedup(without: Timing, with_: Timing) -> float:
    return round(without.median_ms / with_.median_ms, 1) if with_.median_ms > 0 else 0.0


def db_speedup(without: Timing, with_: Timing) -> float:
    return round(without.db_ms / with_.db_ms, 1) if with_.db_ms > 0 else 0.0
