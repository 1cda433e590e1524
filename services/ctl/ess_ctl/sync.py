"""`essctl sync`: copy the rows one cluster lacks from the other (the seed's daily job).

    essctl sync --from local --to cloud --start T --end T [--site S] [--table T|all]
                [--both] [--dry-run] [--json] [--chunk-rows N]

Compares, day slice by day slice, which slots each cluster holds, and copies
exactly the missing rows with the sink's idempotent write (COPY + ON CONFLICT
DO NOTHING) in chunks of at most `--chunk-rows`; running it twice copies
nothing the second time. `--both` also copies the other way. `--dry-run`
counts what would be copied and changes nothing. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import asyncpg
import orjson

from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.logs import error_line
from ess_common.model import Table
from ess_common.settings import CommonSettings
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import (
    UsageError,
    check_site,
    checked_range,
    fail_usage,
    one_cluster,
    settings_or_exit,
    site_slug,
    table_or_all,
    utc_time,
)
from ess_ctl.progress import ProgressLine
from ess_tables.crosssync import SyncTotals, sync_range


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser("sync", help="copy rows one cluster lacks from the other")
    cmd.add_argument("--from", dest="source", type=one_cluster, required=True, help="local|cloud")
    cmd.add_argument("--to", dest="target", type=one_cluster, required=True, help="local|cloud")
    cmd.add_argument("--start", type=utc_time, required=True, help="UTC, inclusive")
    cmd.add_argument("--end", type=utc_time, required=True, help="UTC, exclusive")
    cmd.add_argument("--site", type=site_slug, default=None)
    cmd.add_argument("--table", type=table_or_all, default=table_or_all("all"), help="or all")
    cmd.add_argument("--both", action="store_true", help="copy in both directions")
    cmd.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    cmd.add_argument("--chunk-rows", type=int, default=20_000, help="rows per write (100..1M)")
    cmd.add_argument("--json", action="store_true", help="JSON on stdout")
    cmd.set_defaults(handler=run_sync)


def _check(args: argparse.Namespace) -> None:
    checked_range(args.start, args.end, "--start/--end")
    if args.source == args.target:
        raise UsageError("--from and --to must be different clusters")
    if not 100 <= args.chunk_rows <= 1_000_000:
        raise UsageError("--chunk-rows must be between 100 and 1,000,000")


def run_sync(args: argparse.Namespace) -> int:
    try:
        _check(args)
    except UsageError as exc:
        return fail_usage("sync", str(exc))
    settings = settings_or_exit("sync")
    if isinstance(settings, int):
        return settings
    try:
        results = asyncio.run(_sync(settings, args))
    except UsageError as exc:
        return fail_usage("sync", str(exc))
    except DB_FAILURES as exc:
        print(f"essctl sync: failed: {error_line(exc)}", file=sys.stderr)
        return Exit.FAILED
    _print(args, results)
    return Exit.OK


async def _sync(settings: CommonSettings, args: argparse.Namespace) -> list[dict[str, Any]]:
    conns: dict[str, asyncpg.Connection] = {}
    try:
        for cluster in (args.source, args.target):
            conns[cluster] = await connect(
                settings.dsn(cluster),
                timeouts=DbTimeouts(command_s=900.0),
                application_name="essctl-sync",
            )
        if args.site is not None:
            await check_site(conns, args.table, args.site)
        directions = [(args.source, args.target)]
        if args.both:
            directions.append((args.target, args.source))
        results = []
        for source, target in directions:
            for table in args.table:
                totals = await _one(
                    conns[source], conns[target], table, args, f"{source}->{target}"
                )
                results.append({"from": source, "to": target, "table": table, **_fields(totals)})
        return results
    finally:
        for conn in conns.values():
            await conn.close()


async def _one(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: Table,
    args: argparse.Namespace,
    label: str,
) -> SyncTotals:
    line = ProgressLine(f"sync {label} {table}")
    totals = await sync_range(
        source,
        target,
        table,
        args.start,
        args.end,
        site=args.site,
        dry_run=args.dry_run,
        chunk_rows=args.chunk_rows,
        progress=lambda t: line.update(t.copied, t.missing or None, f"inserted {t.inserted:,}"),
    )
    line.finish(totals.copied, totals.missing or None, f"inserted {totals.inserted:,}")
    return totals


def _fields(t: SyncTotals) -> dict[str, int]:
    return {
        "missing": t.missing,
        "copied": t.copied,
        "inserted": t.inserted,
        "already_present": t.already_present,
    }


def _print(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    if args.json:
        doc = {
            "start": args.start.isoformat(),
            "end": args.end.isoformat(),
            "dry_run": args.dry_run,
            "results": results,
        }
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    verb = "would copy" if args.dry_run else "copied"
    for r in results:
        print(
            f"{r['from']} -> {r['to']} {r['table']}: {r['missing']:,} slots missing, {verb}"
            f" {r['copied'] if not args.dry_run else r['missing']:,},"
            f" inserted {r['inserted']:,}, already present {r['already_present']:,}"
        )
