"""`essctl fleet`: the fleet registry (what should exist) in both clusters.

    essctl fleet list [--site S] [--retired] [--json]
    essctl fleet retire DEVICE [--at T] [--json]
    essctl fleet maintenance add --site S [--device D] --from T [--to T] --reason TEXT [--json]
    essctl fleet maintenance list [--site S] [--open] [--json]
    essctl fleet maintenance end ID [--at T] [--json]

Reads come from the first cluster that answers; changes go to both clusters,
each in its own transaction, checked on both before either commits: an
unknown device, site or maintenance id, a time before commissioning, or an
unreachable cluster changes nothing (exit 2 for bad input, 1 when a cluster
cannot be reached). Devices are registered by the collector; a device taken
out of an inventory stays expected until it is retired here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from ess_common.clusters import CLUSTERS
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.logs import error_line
from ess_common.model import DeviceId
from ess_common.settings import CommonSettings
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import fail_usage, settings_or_exit, site_slug, utc_time
from ess_tables import registry
from ess_tables.registry import MaintenanceRow, RegistryError

T = TypeVar("T")


class ClusterUnreachableError(Exception):
    """A cluster could not be reached; nothing was changed."""


def device_key(text: str) -> str:
    try:
        DeviceId.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device id (e.g. site1/bank1/rack2, site1/pcs1)"
        ) from None
    return text


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    fleet = groups.add_parser("fleet", help="the fleet registry: devices, retirement, maintenance")
    commands = fleet.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)

    ls = commands.add_parser("list", help="registered devices")
    ls.add_argument("--site", type=site_slug, default=None)
    ls.add_argument("--retired", action="store_true", help="only retired devices")
    ls.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ls.set_defaults(handler=run_list)

    retire = commands.add_parser("retire", help="retire a device: not expected from then on")
    retire.add_argument("device", type=device_key)
    retire.add_argument("--at", type=utc_time, default=None, help="UTC; default now")
    retire.add_argument("--json", action="store_true")
    retire.set_defaults(handler=run_retire)

    maint = commands.add_parser("maintenance", help="maintenance windows")
    mcmds = maint.add_subparsers(dest="maintenance_command", metavar="COMMAND", required=True)
    add = mcmds.add_parser("add", help="open a maintenance window of a site or a device")
    add.add_argument("--site", type=site_slug, required=True)
    add.add_argument("--device", type=device_key, default=None, help="default: the whole site")
    add.add_argument("--from", dest="start", type=utc_time, default=None, help="default now")
    add.add_argument("--to", dest="end", type=utc_time, default=None, help="default: open")
    add.add_argument("--reason", required=True)
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=run_maintenance_add)
    mls = mcmds.add_parser("list", help="maintenance windows")
    mls.add_argument("--site", type=site_slug, default=None)
    mls.add_argument("--open", action="store_true", help="only windows not ended")
    mls.add_argument("--json", action="store_true")
    mls.set_defaults(handler=run_maintenance_list)
    end = mcmds.add_parser("end", help="end a maintenance window")
    end.add_argument("id")
    end.add_argument("--at", type=utc_time, default=None, help="UTC; default now")
    end.add_argument("--json", action="store_true")
    end.set_defaults(handler=run_maintenance_end)


# -- plumbing: one connection per cluster, reads from the first, writes to all ------------


@contextlib.asynccontextmanager
async def _connections(settings: CommonSettings) -> AsyncIterator[dict[str, asyncpg.Connection]]:
    conns: dict[str, asyncpg.Connection] = {}
    try:
        for cluster in CLUSTERS:
            try:
                conns[cluster] = await connect(
                    settings.dsn(cluster),
                    timeouts=DbTimeouts(connect_s=10.0, command_s=60.0),
                    application_name="essctl-fleet",
                )
            except DB_FAILURES as exc:
                raise ClusterUnreachableError(
                    f"cluster {cluster} unreachable: {error_line(exc)}"
                ) from None
        yield conns
    finally:
        for conn in conns.values():
            await conn.close()


async def _on_all(
    conns: dict[str, asyncpg.Connection], change: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """Apply `change` on every cluster; commit only when it succeeded on all of them."""
    transactions = []
    results: list[T] = []
    try:
        for conn in conns.values():
            tx = conn.transaction()
            await tx.start()
            transactions.append(tx)
            results.append(await change(conn))
    except BaseException:
        for tx in transactions:
            with contextlib.suppress(*DB_FAILURES):
                await tx.rollback()
        raise
    for tx in transactions:
        await tx.commit()
    return results[-1]


def _run(
    args: argparse.Namespace, body: Callable[[dict[str, asyncpg.Connection]], Awaitable[Any]]
) -> int:
    settings = settings_or_exit("fleet")
    if isinstance(settings, int):
        return settings

    async def go() -> Any:
        async with _connections(settings) as conns:
            return await body(conns)

    try:
        out = asyncio.run(go())
    except RegistryError as exc:
        return fail_usage("fleet", str(exc))
    except ClusterUnreachableError as exc:
        print(f"essctl fleet: error: {exc}; nothing was changed", file=sys.stderr)
        return Exit.FAILED
    except asyncpg.UndefinedTableError:
        print(
            "essctl fleet: error: no fleet registry in the clusters:"
            " run `essctl db migrate --cluster all`",
            file=sys.stderr,
        )
        return Exit.FAILED
    except DB_FAILURES as exc:
        print(f"essctl fleet: error: {error_line(exc)}; nothing was changed", file=sys.stderr)
        return Exit.FAILED
    _print(args, out)
    return Exit.OK


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    return value


def _print(args: argparse.Namespace, out: Any) -> None:
    if args.json:
        print(orjson.dumps(_jsonable(out), option=orjson.OPT_INDENT_2).decode())
        return
    rows = out if isinstance(out, list) else [out]
    if not rows:
        print("nothing registered" if args.fleet_command == "list" else "no maintenance windows")
    for row in rows:
        print("  ".join(f"{k}={_text(v)}" for k, v in _jsonable(row).items()))


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


# -- the commands -------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    async def body(conns: dict[str, asyncpg.Connection]) -> list[dict[str, Any]]:
        conn = next(iter(conns.values()))
        zones = await registry.zones(conn)
        found = await registry.devices(conn, args.site)
        return [
            {
                "device": d.device,
                "site": d.site,
                "table": d.table,
                "time_zone": zones.get(d.site, "UTC"),
                "commissioned_at": d.commissioned_at,
                "retired_at": d.retired_at,
                "registered_by": d.registered_by,
            }
            for d in found
            if not args.retired or d.retired_at is not None
        ]

    return _run(args, body)


def run_retire(args: argparse.Namespace) -> int:
    at = args.at or _now()

    async def body(conns: dict[str, asyncpg.Connection]) -> Any:
        return await _on_all(conns, lambda conn: registry.retire(conn, args.device, at))

    return _run(args, body)


def run_maintenance_add(args: argparse.Namespace) -> int:
    start = args.start or _now()
    if args.end is not None and args.end <= start:
        return fail_usage("fleet", f"--to ({args.end.isoformat()}) must be after --from")
    if args.device is not None and DeviceId.parse(args.device).site != args.site:
        return fail_usage("fleet", f"{args.device} is not a device of site {args.site}")
    if not args.reason.strip() or len(args.reason) > 500:
        return fail_usage("fleet", "--reason: say why, in at most 500 characters")
    row = MaintenanceRow(
        registry.new_maintenance_id(),
        args.site,
        args.device,
        start,
        args.end,
        args.reason.strip(),
        "essctl",
    )

    async def body(conns: dict[str, asyncpg.Connection]) -> MaintenanceRow:
        await _on_all(conns, lambda conn: registry.open_maintenance(conn, row))
        return row

    return _run(args, body)


def run_maintenance_list(args: argparse.Namespace) -> int:
    async def body(conns: dict[str, asyncpg.Connection]) -> list[MaintenanceRow]:
        found = await registry.maintenance(next(iter(conns.values())), args.site)
        now = _now()
        return [m for m in found if not args.open or m.ends_at is None or m.ends_at > now]

    return _run(args, body)


def run_maintenance_end(args: argparse.Namespace) -> int:
    at = args.at or _now()

    async def body(conns: dict[str, asyncpg.Connection]) -> MaintenanceRow:
        return await _on_all(conns, lambda conn: registry.end_maintenance(conn, args.id, at))

    return _run(args, body)
