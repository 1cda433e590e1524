"""`essctl archive`: the Parquet archive in object storage, against the clusters.

    essctl archive list [--table T|all] [--site S] [--from DAY] [--to DAY] [--json]
    essctl archive verify --cluster local|cloud|all --from T --to T [--table T|all] [--site S]
                          [--json]
    essctl archive restore --cluster local|cloud --from T --to T [--table T|all] [--site S]
                           [--device D ...] [--dry-run] [--chunk-rows N] [--json]

`list` shows, per table, site and UTC day, the readings, bytes, parts and
staged segments the manifests name. `verify` compares each archived day with
a cluster's rows: `missing` slots the cluster holds and the archive lacks,
`extra` slots the archive holds and the cluster lacks (exit 1 when any).
`restore` copies the slots of `[--from, --to)` a cluster lacks from the
archive, with the clusters' idempotent write: a second run inserts nothing.
`--dry-run` counts what it would copy. Progress on stderr, `--json` on
stdout. Exit 0 done, 1 a difference (verify) or a failure, 2 bad arguments,
78 bad settings (`ESS_ARCHIVE_S3_*` unset included).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg
import orjson

from ess_archive_layout.compare import RestoreTotals, compare_day, restore_day
from ess_archive_layout.layout import PartitionDay, days_between
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.settings import ArchiveStoreSettings
from ess_archive_layout.store import ArchiveError, ArchiveStore
from ess_common.clusters import CLUSTERS, Cluster
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.logs import error_line
from ess_common.model import DeviceId, Table
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import (
    UsageError,
    checked_range,
    cluster_or_all,
    fail_usage,
    one_cluster,
    settings_or_exit,
    site_slug,
    table_or_all,
    utc_time,
)
from ess_ctl.progress import ProgressLine
from ess_tables.presence import sites_in_range


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    group = groups.add_parser("archive", help="the Parquet archive: list, verify, restore")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="archived days per table and site")
    _filters(listing)
    listing.add_argument("--from", dest="start", type=utc_time, default=None, help="UTC day")
    listing.add_argument("--to", dest="end", type=utc_time, default=None, help="UTC, exclusive")
    listing.set_defaults(handler=run_list)

    verify = commands.add_parser("verify", help="archived days against a cluster's rows")
    verify.add_argument("--cluster", type=cluster_or_all, default=CLUSTERS, help="local|cloud|all")
    _filters(verify)
    _range(verify)
    verify.set_defaults(handler=run_verify)

    restore = commands.add_parser("restore", help="copy the slots a cluster lacks from the archive")
    restore.add_argument("--cluster", type=one_cluster, required=True, help="local|cloud")
    _filters(restore)
    _range(restore)
    restore.add_argument("--device", action="append", default=None, help="only these (repeatable)")
    restore.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    restore.add_argument("--chunk-rows", type=int, default=20_000, help="rows per write (100..1M)")
    restore.set_defaults(handler=run_restore)


def _filters(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--table", type=table_or_all, default=table_or_all("all"), help="or all")
    cmd.add_argument("--site", type=site_slug, default=None)
    cmd.add_argument("--json", action="store_true", help="one JSON document on stdout")


def _range(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--from", dest="start", type=utc_time, required=True, help="UTC, inclusive")
    cmd.add_argument("--to", dest="end", type=utc_time, required=True, help="UTC, exclusive")


Work = Callable[[ArchiveReader, ArchiveStoreSettings, argparse.Namespace], Coroutine[Any, Any, int]]


def _run(command: str, args: argparse.Namespace, work: Work) -> int:
    """Common frame: settings, the store, errors as one line and exit 1."""
    settings = settings_or_exit(f"archive {command}", ArchiveStoreSettings)
    if isinstance(settings, int):
        return settings
    if not settings.archive_configured:
        print(f"essctl archive {command}: error: ESS_ARCHIVE_S3_BUCKET is not set", file=sys.stderr)
        return Exit.CONFIG
    try:
        code: int = asyncio.run(work(ArchiveReader(ArchiveStore(settings)), settings, args))
    except UsageError as exc:
        return fail_usage(f"archive {command}", str(exc))
    except ArchiveError as exc:
        print(f"essctl archive {command}: object store: {exc}", file=sys.stderr)
        return Exit.FAILED
    except DB_FAILURES as exc:
        print(f"essctl archive {command}: failed: {error_line(exc)}", file=sys.stderr)
        return Exit.FAILED
    return code


def _print(args: argparse.Namespace, doc: dict[str, Any], lines: Sequence[str]) -> None:
    if args.json:
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(lines))


# -- list -------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    return _run("list", args, _list)


async def _list(reader: ArchiveReader, _: ArchiveStoreSettings, args: argparse.Namespace) -> int:
    days = await reader.partition_days(
        args.table,
        args.site,
        args.start.date() if args.start else None,
        args.end.date() if args.end else None,
    )
    rows = []
    for pd in days:
        m = (await reader.manifest(pd)).manifest
        rows.append(
            {
                "table": pd.table,
                "site": pd.site,
                "date": pd.day.isoformat(),
                "rows": m.rows,
                "bytes": m.bytes,
                "parts": len(m.parts),
                "segments": len(m.segments),
                "bytes_per_row": round(m.bytes / m.rows, 2) if m.rows else None,
            }
        )
    lines = [f"{'TABLE':<6} {'SITE':<12} {'DATE':<10} {'ROWS':>12} {'BYTES':>14} PARTS SEGMENTS"]
    lines += [
        f"{r['table']:<6} {r['site']:<12} {r['date']:<10} {r['rows']:>12,} {r['bytes']:>14,}"
        f" {r['parts']:>5} {r['segments']:>8}"
        for r in rows
    ]
    _print(args, {"days": rows}, lines if rows else ["the archive holds nothing here"])
    return Exit.OK


# -- verify and restore -----------------------------------------------------------------------


async def _days(
    reader: ArchiveReader, conn: asyncpg.Connection, args: argparse.Namespace
) -> list[PartitionDay]:
    """Days of the range per table and site that the archive or the cluster holds."""
    days = days_between(args.start, args.end)
    found = set(await reader.partition_days(args.table, args.site, days[0], days[-1]))
    for table in args.table:
        for site in await sites_in_range(conn, table, args.start, args.end):
            if args.site is None or site == args.site:
                found.update(PartitionDay(table, site, d) for d in days)
    return sorted(found)


async def _connect(settings: ArchiveStoreSettings, cluster: Cluster) -> asyncpg.Connection:
    return await connect(
        settings.dsn(cluster),
        timeouts=DbTimeouts(command_s=900.0),
        application_name="essctl-archive",
    )


def _range_or_usage(command: str, args: argparse.Namespace) -> int | None:
    try:
        checked_range(args.start, args.end)
    except UsageError as exc:
        return fail_usage(f"archive {command}", str(exc))
    return None


def run_verify(args: argparse.Namespace) -> int:
    bad = _range_or_usage("verify", args)
    return bad if bad is not None else _run("verify", args, _verify)


async def _verify(
    reader: ArchiveReader, settings: ArchiveStoreSettings, args: argparse.Namespace
) -> int:
    results: list[dict[str, Any]] = []
    for cluster in args.cluster:
        conn = await _connect(settings, cluster)
        try:
            days = await _days(reader, conn, args)
            line = ProgressLine(f"verify {cluster}")
            for i, pd in enumerate(days):
                diff = await compare_day(reader, conn, pd)
                results.append(
                    {
                        "cluster": cluster,
                        "table": pd.table,
                        "site": pd.site,
                        "date": pd.day.isoformat(),
                        "archived": diff.archived,
                        "present": diff.present,
                        "missing": diff.missing_slots,
                        "extra": diff.extra_slots,
                        "devices_missing": sorted(diff.missing)[:20],
                        "devices_extra": sorted(diff.extra)[:20],
                    }
                )
                line.update(i + 1, len(days))
            line.finish(len(days), len(days) or None)
        finally:
            await conn.close()
    differ = [r for r in results if r["missing"] or r["extra"]]
    lines = [
        f"{r['cluster']} {r['table']} {r['site']} {r['date']}: archived {r['archived']:,},"
        f" in the cluster {r['present']:,}, missing {r['missing']:,}, extra {r['extra']:,}"
        for r in results
    ]
    lines.append(f"{len(differ)} of {len(results)} days differ")
    _print(
        args, {"start": args.start.isoformat(), "end": args.end.isoformat(), "days": results}, lines
    )
    return Exit.FAILED if differ else Exit.OK


def run_restore(args: argparse.Namespace) -> int:
    bad = _range_or_usage("restore", args)
    if bad is not None:
        return bad
    if not 100 <= args.chunk_rows <= 1_000_000:
        return fail_usage("archive restore", "--chunk-rows must be between 100 and 1,000,000")
    try:
        for device in args.device or ():
            DeviceId.parse(device)
    except ValueError as exc:
        return fail_usage("archive restore", str(exc))
    return _run("restore", args, _restore)


async def _restore(
    reader: ArchiveReader, settings: ArchiveStoreSettings, args: argparse.Namespace
) -> int:
    conn = await _connect(settings, args.cluster)
    totals: dict[Table, RestoreTotals] = {}
    try:
        days = await _days(reader, conn, args)
        line = ProgressLine(f"restore {args.cluster}")
        done = RestoreTotals()
        for i, pd in enumerate(days):
            step = await restore_day(
                reader,
                conn,
                pd,
                args.start,
                args.end,
                devices=set(args.device) if args.device else None,
                dry_run=args.dry_run,
                chunk_rows=args.chunk_rows,
            )
            totals.setdefault(pd.table, RestoreTotals()).add(step)
            done.add(step)
            line.update(i + 1, len(days), f"inserted {done.inserted:,}")
        line.finish(len(days), len(days) or None, f"inserted {done.inserted:,}")
    finally:
        await conn.close()
    results = [
        {
            "table": table,
            "missing": t.missing,
            "copied": t.copied,
            "inserted": t.inserted,
            "already_present": t.copied - t.inserted,
            "days": t.days,
        }
        for table, t in sorted(totals.items())
    ]
    verb = "would copy" if args.dry_run else "copied"
    lines = [
        f"archive -> {args.cluster} {r['table']}: {r['missing']:,} slots missing, {verb}"
        f" {r['missing'] if args.dry_run else r['copied']:,}, inserted {r['inserted']:,}"
        for r in results
    ] or ["nothing archived in that range"]
    doc = {
        "cluster": args.cluster,
        "start": args.start.isoformat(),
        "end": args.end.isoformat(),
        "dry_run": args.dry_run,
        "results": results,
    }
    _print(args, doc, lines)
    return Exit.OK
