"""`essctl loss`: the seed's loss report per cluster, site and table, with source/sink/total.

    essctl loss --cluster local|cloud|all --from T --to T [--site S] [--table T|all]
                [--by-device] [--no-kafka] [--json]

Expected slots are the fleet registry's slots in service: one per second per
registered device, from commissioning to retirement, outside maintenance
(reported apart); devices with data but no registration are listed as
unregistered, not counted. Which slots reached Kafka comes
from a scan of the telemetry topics over the range (skipped with
`--no-kafka`, or partial when Kafka no longer holds the start: then only what
a cluster holds proves a slot reached Kafka); what each cluster holds is
counted per device and hour, with exact seconds only where an hour is
incomplete. Both clusters are always asked, because a slot either holds
proves it reached Kafka. When Kafka was scanned, a slot missing in a cluster
whose sink group has not committed past it yet is "pending", not loss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ess_common.clusters import CLUSTERS
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.kafka_offsets import group_committed
from ess_common.logs import error_line
from ess_common.model import Table
from ess_common.settings import CommonSettings
from ess_common.topics import telemetry_topic
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import (
    UsageError,
    check_site,
    checked_range,
    cluster_or_all,
    fail_usage,
    settings_or_exit,
    site_slug,
    table_or_all,
    utc_time,
)
from ess_ctl.progress import ProgressLine
from ess_loss.kafka_scan import scan_slots
from ess_loss.lossmath import RangeLoss, SlotCounts
from ess_loss.service_time import FleetRegistry
from ess_loss.slots import SlotTracker
from ess_loss.window import Committed, site_of_device, window_loss
from ess_tables.crosssync import slices
from ess_tables.presence import presence, table_bytes
from ess_tables.registry import load as load_registry


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser("loss", help="loss rates per cluster, site and table (seed report)")
    cmd.add_argument("--cluster", type=cluster_or_all, default=CLUSTERS, help="local|cloud|all")
    cmd.add_argument("--from", dest="start", type=utc_time, required=True, help="UTC, inclusive")
    cmd.add_argument("--to", dest="end", type=utc_time, required=True, help="UTC, exclusive")
    cmd.add_argument("--site", type=site_slug, default=None)
    cmd.add_argument("--table", type=table_or_all, default=table_or_all("all"), help="or all")
    cmd.add_argument("--by-device", action="store_true", help="one row per device as well")
    cmd.add_argument("--no-kafka", action="store_true", help="do not scan Kafka")
    cmd.add_argument("--json", action="store_true", help="one JSON document on stdout")
    cmd.set_defaults(handler=run_loss)


@dataclass
class LossReport:
    start: datetime
    end: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)
    kafka: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    unregistered: dict[str, list[str]] = field(default_factory=dict)


def run_loss(args: argparse.Namespace) -> int:
    try:
        checked_range(args.start, args.end)
    except UsageError as exc:
        return fail_usage("loss", str(exc))
    settings = settings_or_exit("loss")
    if isinstance(settings, int):
        return settings
    try:
        report = asyncio.run(_report(settings, args))
    except UsageError as exc:
        return fail_usage("loss", str(exc))
    if args.json:
        print(orjson.dumps(_as_json(report), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_table(report)
    return Exit.FAILED if report.unreachable else Exit.OK


async def _connect_all(
    settings: CommonSettings, report: LossReport
) -> dict[str, asyncpg.Connection]:
    conns: dict[str, asyncpg.Connection] = {}
    for cluster in CLUSTERS:
        try:
            conns[cluster] = await connect(
                settings.dsn(cluster),
                timeouts=DbTimeouts(command_s=900.0),
                application_name="essctl-loss",
            )
        except DB_FAILURES as exc:
            report.unreachable[cluster] = error_line(exc)
    return conns


async def _report(settings: CommonSettings, args: argparse.Namespace) -> LossReport:
    report = LossReport(args.start, args.end)
    conns = await _connect_all(settings, report)
    try:
        if args.site is not None and conns:
            await check_site(conns, args.table, args.site)
        fleet = await _registry(conns)
        for table in args.table:
            await _table_loss(settings, args, table, conns, report, fleet=fleet)
    finally:
        for conn in conns.values():
            await conn.close()
    return report


async def _table_loss(
    settings: CommonSettings,
    args: argparse.Namespace,
    table: Table,
    conns: dict[str, asyncpg.Connection],
    report: LossReport,
    *,
    fleet: FleetRegistry,
) -> None:
    tracker = SlotTracker(86400, 60)
    committed: Committed | None = None
    if not args.no_kafka:
        line = ProgressLine(f"scanning kafka {table}")
        scan = await scan_slots(
            settings.kafka_bootstrap,
            settings.topic_prefix,
            table,
            (args.start, args.end),
            tracker,
            progress=line.update,
        )
        report.kafka[table] = {"messages": scan.messages, "covers_range": scan.covered}
        committed = await _sink_groups(settings, table, conns)
    else:
        report.kafka[table] = {"messages": 0, "covers_range": False, "skipped": True}
    totals = await _range_loss(args, table, conns, tracker, fleet=fleet, committed=committed)
    if totals.unregistered:
        report.unregistered[table] = sorted(totals.unregistered)
    sizes = {c: await table_bytes(conn, table) for c, conn in conns.items()}
    for cluster in args.cluster:
        if cluster not in conns:
            continue
        by_site = totals.site_counts(cluster)
        for site, counts in sorted(by_site.items()):
            report.rows.append(_row(cluster, site, table, counts, sizes[cluster]))
        if args.by_device:
            for device, counts in sorted(totals.device_counts(cluster).items()):
                site = site_of_device(device)
                report.rows.append(
                    _row(cluster, site, table, counts, sizes[cluster], device=device)
                )
        if by_site:
            total = sum(by_site.values(), SlotCounts(0, 0, 0))
            report.rows.append(_row(cluster, "all", table, total, sizes[cluster]))


async def _range_loss(
    args: argparse.Namespace,
    table: Table,
    conns: dict[str, asyncpg.Connection],
    tracker: SlotTracker,
    *,
    fleet: FleetRegistry,
    committed: Committed | None,
) -> RangeLoss:
    """Slice by slice (days): what each cluster holds against what reached Kafka."""
    totals = RangeLoss(conns)
    for lo, hi in slices(args.start, args.end):

        async def present(cluster: str, lo: datetime = lo, hi: datetime = hi) -> dict[str, int]:
            return await presence(conns[cluster], table, lo, hi, site=args.site)

        a, b = int(lo.timestamp()), int(hi.timestamp())
        found = await window_loss(
            tracker,
            table,
            a,
            b,
            registry=fleet,
            clusters=conns,
            presence_of=present,
            committed=committed,
            sites=None if args.site is None else {args.site},
        )
        if found is not None:
            totals.add(found.loss)
    return totals


async def _registry(conns: dict[str, asyncpg.Connection]) -> FleetRegistry:
    """The fleet registry of the first cluster that has it."""
    for conn in conns.values():
        try:
            return await load_registry(conn)
        except asyncpg.UndefinedTableError:
            continue
    raise UsageError("no cluster has the fleet registry: run `essctl db migrate --cluster all`")


async def _sink_groups(
    settings: CommonSettings, table: Table, conns: dict[str, asyncpg.Connection]
) -> Committed | None:
    """How far each cluster's sink group has committed on `table` (the groups are
    `ESS_GAP_SINK_GROUP_LOCAL|CLOUD`, as for the detector; default `ess-sink-<cluster>`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="essctl")
    try:
        await admin.start()
        topic = telemetry_topic(table, settings.topic_prefix)
        return {c: await group_committed(admin, _sink_group(c), topic) for c in conns}
    except (KafkaError, OSError) as exc:
        print(
            f"essctl loss: sink groups' offsets unknown ({exc}): nothing shown as pending",
            file=sys.stderr,
        )
        return None
    finally:
        await admin.close()


def _sink_group(cluster: str) -> str:
    return os.environ.get(f"ESS_GAP_SINK_GROUP_{cluster.upper()}") or f"ess-sink-{cluster}"


def _row(
    cluster: str, site: str, table: str, c: SlotCounts, size: int, *, device: str | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {"cluster": cluster, "site": site, "table": table}
    if device is not None:
        row["device"] = device
    row.update(
        expected=c.expected,
        reached_kafka=c.reached,
        present=c.present,
        source_loss=c.source_loss,
        sink_loss=c.sink_loss,
        pending=c.pending,
        maintenance=c.maintenance,
        source_loss_pct=round(c.source_pct, 4),
        sink_loss_pct=round(c.sink_pct, 4),
        loss_pct=round(c.total_pct, 4),
        severity=c.severity,
        table_bytes=size,
    )
    return row


def _as_json(report: LossReport) -> dict[str, Any]:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "kafka": report.kafka,
        "unreachable": report.unreachable,
        "unregistered": report.unregistered,
        "rows": report.rows,
    }


def _print_table(report: LossReport) -> None:
    print(f"loss from {report.start.isoformat()} to {report.end.isoformat()} (UTC, 1 Hz)")
    for table, info in report.kafka.items():
        if info.get("skipped"):
            note = "not scanned (--no-kafka): source loss = slots no cluster holds"
        elif info["covers_range"]:
            note = f"{info['messages']:,} messages scanned"
        else:
            note = f"{info['messages']:,} messages scanned; Kafka no longer holds the start"
        print(f"  kafka {table}: {note}")
    header = (
        f"{'cluster':<7} {'site':<12} {'table':<5} {'device':<22} {'expected':>10}"
        f" {'present':>10} {'pending':>8} {'source%':>8} {'sink%':>8} {'total%':>8}"
        "  severity  size"
    )
    print(header)
    for r in report.rows:
        print(
            f"{r['cluster']:<7} {r['site']:<12} {r['table']:<5} {r.get('device', '-'):<22}"
            f" {r['expected']:>10,} {r['present']:>10,} {r['pending']:>8,}"
            f" {r['source_loss_pct']:>8.3f} {r['sink_loss_pct']:>8.3f} {r['loss_pct']:>8.3f}"
            f"  {r['severity']:<8}  {_size(r['table_bytes'])}"
        )
    for table, devices in report.unregistered.items():
        shown = ", ".join(devices[:10]) + (" ..." if len(devices) > 10 else "")
        print(f"  {table}: {len(devices)} devices with data but not registered: {shown}")
    for cluster, why in report.unreachable.items():
        print(f"cluster {cluster} unreachable: {why}", file=sys.stderr)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n //= 1024
    return f"{n:.0f} TB"
