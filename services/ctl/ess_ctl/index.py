"""`essctl index ...`: the composite indexes the dashboards' queries need (docs/indexes.md).

    essctl index list    [--cluster local|cloud|all] [--table T] [--json]
    essctl index suggest [--cluster C] [--from-log FILE] [--json]
    essctl index create  --table T --columns a,b[,ts] [--cluster C|all] [--dry-run]
    essctl index drop    NAME [--cluster C|all] [--dry-run]
    essctl index bench   --table T [--columns a,b,ts | --index NAME] [--cluster C] [--runs N]

Names are checked against each cluster's catalog before anything runs; a
refusal (exit 2) has run nothing but those catalog reads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from ess_common.clusters import Cluster
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.logs import error_line
from ess_common.settings import CommonSettings
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import cluster_or_all, one_cluster, settings_or_exit
from ess_tables.advisor import (
    advise,
    extensions,
    known_workload,
    recorded_queries,
    sample_values,
)
from ess_tables.index_bench import Timing, arguments, db_speedup, hidden, speedup, time_query
from ess_tables.indexes import (
    BuildProgress,
    CreatePlan,
    IndexRefusedError,
    TableInfo,
    create_index,
    drop_index,
    index_relations,
    list_indexes,
    our_tables,
    plan_create,
    plan_drop,
    table_info,
)
from ess_tables.query_shapes import shapes_of
from ess_tables.workload import Query, parse_log

_TIMEOUTS = DbTimeouts(connect_s=10.0, command_s=600.0)


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    group = groups.add_parser("index", help="list, suggest, create, drop and bench indexes")
    cmds = group.add_subparsers(dest="index_command", metavar="COMMAND", required=True)
    c = cmds.add_parser("list", help="indexes of our tables with size, scans, validity")
    c.add_argument("--cluster", type=cluster_or_all, default=cluster_or_all("all"))
    c.add_argument("--table")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=lambda a: _run(a, _list))
    c = cmds.add_parser("suggest", help="composite indexes the workload needs, costed first")
    c.add_argument("--cluster", type=cluster_or_all, default=cluster_or_all("local"))
    c.add_argument("--from-log", type=Path, help="a query log instead of pg_stat_statements")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=lambda a: _run(a, _suggest))
    c = cmds.add_parser("create", help="build an index without stopping ingest")
    c.add_argument("--table", required=True)
    c.add_argument("--columns", required=True, type=_names)
    c.add_argument("--include", type=_names, default=[], help="covered (non-key) columns")
    c.add_argument("--cluster", type=cluster_or_all, default=cluster_or_all("local"))
    c.add_argument("--dry-run", action="store_true", help="print the statement, run nothing")
    c.set_defaults(handler=lambda a: _run(a, _create))
    c = cmds.add_parser("drop", help="drop an index of our tables (never the natural key)")
    c.add_argument("name")
    c.add_argument("--cluster", type=cluster_or_all, default=cluster_or_all("local"))
    c.add_argument("--dry-run", action="store_true")
    c.set_defaults(handler=lambda a: _run(a, _drop))
    c = cmds.add_parser("bench", help="time the query shapes without and with an index")
    c.add_argument("--table", required=True)
    which = c.add_mutually_exclusive_group()
    which.add_argument("--columns", type=_names, help="default: the top suggestion")
    which.add_argument(
        "--index", help="an existing index: hidden from the planner for the runs without it"
    )
    c.add_argument("--include", type=_names, default=[], help="covered (non-key) columns")
    c.add_argument("--cluster", type=one_cluster, default="local")
    c.add_argument("--runs", type=int, default=5)
    c.add_argument("--window-min", type=int, default=60, help="time range of the shapes")
    c.add_argument("--keep", action="store_true", help="keep the index bench built")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=lambda a: _run(a, _bench))


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",")]


Command = Callable[[argparse.Namespace, CommonSettings], Coroutine[Any, Any, int]]


def _run(args: argparse.Namespace, command: Command) -> int:
    settings = settings_or_exit(f"index {args.index_command}")
    if isinstance(settings, int):
        return settings
    try:
        return asyncio.run(command(args, settings))
    except IndexRefusedError as exc:
        print(f"essctl index {args.index_command}: {exc}", file=sys.stderr)
        return Exit.USAGE
    except DB_FAILURES as exc:
        print(f"essctl index {args.index_command}: FAILED - {error_line(exc)}", file=sys.stderr)
        return Exit.FAILED


async def _connect(settings: CommonSettings, cluster: Cluster) -> asyncpg.Connection:
    return await connect(settings.dsn(cluster), timeouts=_TIMEOUTS, application_name="essctl")


def _clusters(args: argparse.Namespace) -> tuple[Cluster, ...]:
    value = args.cluster
    return value if isinstance(value, tuple) else (value,)


def _cols(r: dict[str, Any]) -> str:
    return ",".join(r["columns"]) + (f" +({','.join(r['include'])})" if r["include"] else "")


def _mb(n: int) -> str:
    return f"{n / 1048576:,.1f} MB"


async def _list(args: argparse.Namespace, settings: CommonSettings) -> int:
    report: dict[str, list[dict[str, Any]]] = {}
    for cluster in _clusters(args):
        conn = await _connect(settings, cluster)
        try:
            tables = [await table_info(conn, args.table)] if args.table else await our_tables(conn)
            report[cluster] = [
                {**asdict(i), "unused": i.unused}
                for t in tables
                for i in await list_indexes(conn, t)
            ]
        finally:
            await conn.close()
    if args.json:
        print(orjson.dumps({"clusters": report}, option=orjson.OPT_INDENT_2).decode())
        return Exit.OK
    for name, rows in report.items():
        print(f"== {name}")
        print(
            f"{'TABLE':<6} {'INDEX':<34} {'COLUMNS':<28} {'SIZE':>10} {'SCANS':>8} {'TUPLES':>12}"
        )
        for r in rows:
            flags = [f for f, on in (("INVALID", not r["valid"]), ("unused", r["unused"])) if on]
            flags += [f"constraint {r['constraint']}"] if r["constraint"] else []
            flags += ["schema"] if r["schema_owned"] else []
            print(
                f"{r['table']:<6} {r['name']:<34} {_cols(r):<28}"
                f" {_mb(r['size_bytes']):>10} {r['scans']:>8,} {r['tuples_read']:>12,}"
                f"  {' '.join(flags)}".rstrip()
            )
    return Exit.OK


async def _workload(
    conn: asyncpg.Connection, tables: list[TableInfo], log_text: str | None, recorded: bool
) -> list[Query]:
    if log_text is not None:
        return parse_log(log_text)
    found = await recorded_queries(conn, [t.name for t in tables]) if recorded else []
    return found or [q for t in tables for q in known_workload(t)]


async def _suggest(args: argparse.Namespace, settings: CommonSettings) -> int:
    report: dict[str, Any] = {}
    log_text = args.from_log.read_text() if args.from_log else None
    for cluster in _clusters(args):
        conn = await _connect(settings, cluster)
        try:
            ext = await extensions(conn)
            tables = await our_tables(conn)
            queries = await _workload(conn, tables, log_text, ext.has("pg_stat_statements"))
            advice = [await advise(conn, t, queries, ext) for t in tables]
        finally:
            await conn.close()
        report[cluster] = {"notes": list(ext.notes), "tables": [asdict(a) for a in advice]}
    if args.json:
        print(orjson.dumps({"clusters": report}, option=orjson.OPT_INDENT_2).decode())
        return Exit.OK
    for name, body in report.items():
        print(f"== {name}")
        for note in body["notes"]:
            print(f"  note: {note}")
        for t in body["tables"]:
            _print_advice(t)
    return Exit.OK


def _print_advice(t: dict[str, Any]) -> None:
    print(f"{t['table']}: workload from {', '.join(t['sources']) or 'nothing'}")
    if t["usage"]:
        print("  filters: " + ", ".join(f"{k} x{v}" for k, v in t["usage"].items()))
    for s in t["suggestions"]:
        cols = ",".join(s["columns"]) + (
            f" INCLUDE {','.join(s['include'])}" if s["include"] else ""
        )
        if s["covered_by"]:
            print(f"  ({cols}): not proposed, covered by {s['covered_by']}")
            continue
        verdict = "PROPOSE" if _proposed(s) else "no gain"
        print(f"  {verdict} ({cols}): {s['why']}")
        if s["unmeasured"]:
            print("    not measured (no HypoPG here)")
        for m in s["measured"]:
            name = m["query"]["name"] or " ".join(m["query"]["sql"].split())[:70]
            print(
                f"    cost {m['cost_before']:,.0f} -> {m['cost_after']:,.0f}"
                f" [{', '.join(m['nodes_before'])} -> {', '.join(m['nodes_after'])}] {name}"
            )
    for name in t["drop"]:
        print(f"  DROP? {name}: never scanned since the statistics were reset")


def _proposed(s: dict[str, Any]) -> bool:
    helped = any(m["cost_after"] < m["cost_before"] * 0.8 for m in s["measured"])
    return bool(s["unmeasured"] or helped)


def _progress_printer(cluster: str) -> Callable[[BuildProgress], None]:
    last: list[int] = [-1]

    def show(p: BuildProgress) -> None:
        if p.phase == "done":
            print(f"{cluster}: built on {p.chunks_done}/{p.chunks_total} chunks", file=sys.stderr)
            return
        if p.chunks_done != last[0] or p.blocks_total:
            last[0] = p.chunks_done
            where = f" {p.current} {p.phase or ''} {p.blocks_done}/{p.blocks_total} blocks"
            print(
                f"{cluster}: chunk {p.chunks_done}/{p.chunks_total}{where if p.current else ''}",
                file=sys.stderr,
            )

    return show


async def _create(args: argparse.Namespace, settings: CommonSettings) -> int:
    conns = {c: await _connect(settings, c) for c in _clusters(args)}
    try:
        plans = {
            c: await plan_create(conn, args.table, args.columns, args.include)
            for c, conn in conns.items()
        }
        for cluster, plan in plans.items():
            print(f"{cluster}: {plan.sql}")
            if args.dry_run:
                continue
            watch = await _connect(settings, cluster)
            try:
                info = await create_index(conns[cluster], watch, plan, _progress_printer(cluster))
            finally:
                await watch.close()
            print(f"{cluster}: created {info.name}, {_mb(info.size_bytes)}")
    finally:
        for conn in conns.values():
            await conn.close()
    return Exit.OK


async def _drop(args: argparse.Namespace, settings: CommonSettings) -> int:
    conns = {c: await _connect(settings, c) for c in _clusters(args)}
    try:
        plans = {c: await plan_drop(conn, args.name) for c, conn in conns.items()}
        for cluster, plan in plans.items():
            print(f"{cluster}: {plan.sql}")
            if not args.dry_run:
                await drop_index(conns[cluster], plan)
                print(f"{cluster}: dropped {plan.index.name} ({_mb(plan.index.size_bytes)} freed)")
    finally:
        for conn in conns.values():
            await conn.close()
    return Exit.OK


async def _bench(args: argparse.Namespace, settings: CommonSettings) -> int:
    cluster = args.cluster
    conn = await _connect(settings, cluster)
    try:
        table = await table_info(conn, args.table)
        values = await sample_values(conn, table, timedelta(minutes=args.window_min))
        if values is None:
            print(f"{cluster}: {table.name} has no rows to bench on")
            return Exit.FAILED
        if args.index:
            result = await _bench_existing(conn, table, args.index, values, args.runs)
        else:
            columns, include = (args.columns, args.include)
            if not columns:
                columns, include = await _top_suggestion(conn, table)
            if not columns:
                print(f"{cluster}: no index to bench: nothing is proposed for {table.name}")
                return Exit.OK
            plan = await plan_create(conn, table.name, columns, include)
            result = await _bench_new(conn, settings, plan, values, args)
    finally:
        await conn.close()
    result["cluster"] = cluster
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return Exit.OK
    print(
        f"{cluster}: {result['index']} ({','.join(result['columns'])}),"
        f" {_mb(result['size_bytes'])}, {result['how']}; median of {args.runs} runs"
    )
    print("  end to end (ms)           in the server (ms)")
    for r in result["queries"]:
        print(
            f"  {r['without_ms']:>9.2f} -> {r['with_ms']:>9.2f} x{r['speedup']:<6}"
            f" {r['db_without_ms']:>9.2f} -> {r['db_with_ms']:>9.2f} x{r['db_speedup']:<6}"
            f" [{', '.join(r['nodes_without'])} -> {', '.join(r['nodes_with'])}] {r['query']}"
        )
    return Exit.OK


Timings = list[Timing]


async def _time_shapes(conn: asyncpg.Connection, table: str, values: Any, runs: int) -> Timings:
    return [await time_query(conn, s.sql, arguments(s, values), runs) for s in shapes_of(table)]


def _rows(table: str, without: Timings, with_: Timings) -> list[dict[str, Any]]:
    return [
        {
            "query": s.name,
            "without_ms": a.median_ms,
            "with_ms": b.median_ms,
            "speedup": speedup(a, b),
            "db_without_ms": a.db_ms,
            "db_with_ms": b.db_ms,
            "db_speedup": db_speedup(a, b),
            "rows": b.rows,
            "nodes_without": a.nodes,
            "nodes_with": b.nodes,
            "indexes_with": b.index_names,
        }
        for s, a, b in zip(shapes_of(table), without, with_, strict=True)
    ]


async def _bench_new(
    conn: asyncpg.Connection,
    settings: CommonSettings,
    plan: CreatePlan,
    values: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Build the planned index (dropped again unless --keep) between the two series."""
    table = plan.table.name
    without = await _time_shapes(conn, table, values, args.runs)
    watch = await _connect(settings, args.cluster)
    try:
        info = await create_index(conn, watch, plan, _progress_printer(args.cluster))
    finally:
        await watch.close()
    with_ = await _time_shapes(conn, table, values, args.runs)
    if not args.keep:
        await drop_index(conn, await plan_drop(conn, info.name))
    return {
        "index": info.name,
        "columns": list(plan.columns),
        "include": list(plan.include),
        "how": "kept" if args.keep else "built for the bench and dropped again",
        "kept": args.keep,
        "size_bytes": info.size_bytes,
        "queries": _rows(table, without, with_),
    }


async def _bench_existing(
    conn: asyncpg.Connection, table: TableInfo, name: str, values: Any, runs: int
) -> dict[str, Any]:
    """Time the shapes with the index hidden from this session's planner, then visible."""
    relations = await index_relations(conn, table, name)  # the name is checked first
    if not (await extensions(conn)).has("hypopg"):
        raise IndexRefusedError(
            "benching an existing index hides it with HypoPG (hypopg_hide_index), which this"
            " database lacks (CREATE EXTENSION hypopg; docs/indexes.md): refused, nothing was run"
        )
    info = next(i for i in await list_indexes(conn, table) if i.name == name)
    async with hidden(conn, relations):
        without = await _time_shapes(conn, table.name, values, runs)
    with_ = await _time_shapes(conn, table.name, values, runs)
    return {
        "index": name,
        "columns": list(info.columns),
        "include": list(info.include),
        "how": f"existing, hidden on {len(relations)} relations for the runs without it",
        "kept": True,
        "size_bytes": info.size_bytes,
        "queries": _rows(table.name, without, with_),
    }


async def _top_suggestion(
    conn: asyncpg.Connection, table: TableInfo
) -> tuple[list[str], list[str]]:
    ext = await extensions(conn)
    queries = await _workload(conn, [table], None, ext.has("pg_stat_statements"))
    advice = await advise(conn, table, queries, ext)
    best = [s for s in advice.suggestions if s.proposed]
    best.sort(key=lambda s: -sum(m.cost_before - m.cost_after for m in s.measured))
    return (list(best[0].columns), list(best[0].include)) if best else ([], [])
