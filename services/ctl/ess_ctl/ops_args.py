"""Argument types and checks shared by `essctl loss|replay|sync|offsets`.

Bad arguments end in one line on stderr and exit code 2 before anything is
read or changed: `type=` functions cover single values (through the one-line
`Parser.error`), `UsageError` covers combinations checked in the handlers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, overload

import asyncpg

from ess_common.clusters import CLUSTERS, Cluster
from ess_common.model import TABLES, DeviceId, Table
from ess_common.settings import CommonSettings, ConfigError, load_settings
from ess_ctl.cli import Exit
from ess_tables.presence import site_has_rows

MAX_RANGE = timedelta(days=31)


class UsageError(Exception):
    """Arguments that cannot be served; the message is the whole explanation."""


def utc_time(text: str) -> datetime:
    """ISO 8601 date or date-time; UTC unless a zone is given; whole seconds."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (use e.g. 2026-03-01 or 2026-03-01T09:00:00Z)"
        ) from None
    if value.microsecond:
        raise argparse.ArgumentTypeError(f"{text!r}: times are whole seconds")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_or_all(text: str) -> tuple[Table, ...]:
    if text == "all":
        return TABLES
    for table in TABLES:
        if text == table:
            return (table,)
    raise argparse.ArgumentTypeError(f"unknown table {text!r} (one of {', '.join(TABLES)}, all)")


def one_table(text: str) -> Table:
    tables = table_or_all(text)
    if len(tables) != 1:
        raise argparse.ArgumentTypeError(f"one table is needed here ({', '.join(TABLES)})")
    return tables[0]


def cluster_or_all(text: str) -> tuple[Cluster, ...]:
    if text == "all":
        return CLUSTERS
    for cluster in CLUSTERS:
        if text == cluster:
            return (cluster,)
    raise argparse.ArgumentTypeError(f"unknown cluster {text!r} (local, cloud, all)")


def one_cluster(text: str) -> Cluster:
    clusters = cluster_or_all(text)
    if len(clusters) != 1:
        raise argparse.ArgumentTypeError("one cluster is needed here (local or cloud)")
    return clusters[0]


def site_slug(text: str) -> str:
    try:
        DeviceId(table="pcs", site=text, unit=1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a site name (lowercase letters, digits, '_' or '-')"
        ) from None
    return text


def checked_range(start: datetime, end: datetime, what: str = "--from/--to") -> None:
    if end <= start:
        raise UsageError(f"{what}: the end ({end.isoformat()}) must be after the start")
    if end - start > MAX_RANGE:
        raise UsageError(f"{what}: at most {MAX_RANGE.days} days at once")


async def check_site(
    conns: Mapping[str, asyncpg.Connection], tables: tuple[Table, ...], site: str
) -> None:
    """`site` must have rows in one of `tables` on one of the clusters."""
    for conn in conns.values():
        for table in tables:
            if await site_has_rows(conn, table, site):
                return
    raise UsageError(f"unknown site {site!r}: no rows for it in {', '.join(tables)}")


def fail_usage(command: str, message: str) -> int:
    print(f"essctl {command}: error: {message}", file=sys.stderr)
    return Exit.USAGE


S = TypeVar("S", bound=CommonSettings)


@overload
def settings_or_exit(command: str) -> CommonSettings | int: ...
@overload
def settings_or_exit(command: str, cls: type[S]) -> S | int: ...
def settings_or_exit(command: str, cls: type[CommonSettings] = CommonSettings) -> Any:
    """`cls` (default `CommonSettings`) from `ESS_*`, or exit code 78 after one stderr line."""
    try:
        return load_settings(cls)
    except ConfigError as exc:
        print(f"essctl {command}: error: {exc}", file=sys.stderr)
        return Exit.CONFIG
