"""`essctl db ...`: the schema of the TimescaleDB clusters.

    essctl db migrate --cluster local|cloud|all [--json]

Runs the same idempotent migrations the sink runs on start (hypertables on
TimescaleDB, plain tables on PostgreSQL, licence-only policies where the
server has the licence). Exit 0 when every cluster asked for is at the
latest version, 1 when one failed (the output says which and why).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict
from typing import Any

import orjson
from pydantic import SecretStr

from ess_common.clusters import CLUSTERS, Cluster
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.logs import error_line
from ess_common.settings import ConfigError, load_settings
from ess_ctl.cli import Exit, Parser
from ess_tables.schema import SchemaPolicies, migrate
from ess_tables.settings import SchemaSettings


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    db = groups.add_parser("db", help="database schema of the clusters")
    commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    cmd = commands.add_parser(
        "migrate", help="create or upgrade the tables (idempotent, safe while sinks run)"
    )
    cmd.add_argument("--cluster", required=True, choices=(*CLUSTERS, "all"))
    cmd.add_argument("--json", action="store_true", help="one JSON document on stdout")
    cmd.add_argument("--timeout", type=float, default=10.0, help="connect timeout, seconds")
    cmd.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(SchemaSettings)
    except ConfigError as exc:
        print(f"essctl: error: {exc}", file=sys.stderr)
        return Exit.CONFIG
    clusters: tuple[Cluster, ...] = CLUSTERS if args.cluster == "all" else (args.cluster,)
    timeouts = DbTimeouts(connect_s=args.timeout, command_s=300.0)
    results = asyncio.run(
        _migrate_all({c: settings.dsn(c) for c in clusters}, settings.policies, timeouts)
    )
    if args.json:
        print(orjson.dumps({"clusters": results}, option=orjson.OPT_INDENT_2).decode())
    else:
        for cluster, result in results.items():
            print(_describe(cluster, result))
    return Exit.OK if all(r["ok"] for r in results.values()) else Exit.FAILED


async def _migrate_all(
    dsns: dict[str, SecretStr], policies: SchemaPolicies, timeouts: DbTimeouts
) -> dict[str, dict[str, Any]]:
    done = await asyncio.gather(*(_migrate_one(d, policies, timeouts) for d in dsns.values()))
    return dict(zip(dsns, done, strict=True))


async def _migrate_one(
    dsn: SecretStr, policies: SchemaPolicies, timeouts: DbTimeouts
) -> dict[str, Any]:
    try:
        conn = await connect(dsn, timeouts=timeouts, application_name="essctl")
    except DB_FAILURES as exc:
        return {"ok": False, "error": f"cannot connect: {error_line(exc)}"}
    try:
        report = await migrate(conn, policies)
    except DB_FAILURES as exc:
        return {"ok": False, "error": f"migration failed: {error_line(exc)}"}
    finally:
        await conn.close()
    return {"ok": True, **asdict(report)}


def _describe(cluster: str, result: dict[str, Any]) -> str:
    if not result["ok"]:
        return f"{cluster}: FAILED - {result['error']}"
    applied = ", ".join(result["applied"]) or "nothing new"
    engine = (
        f"timescaledb {result['timescaledb']} (license {result['license']})"
        if result["timescaledb"]
        else "plain PostgreSQL (no hypertables)"
    )
    return f"{cluster}: schema version {result['version']}; applied: {applied}; {engine}"
