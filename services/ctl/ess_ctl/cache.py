"""`essctl cache`: what the cache holds, as the web side reads it (read-only).

    essctl cache latest [--site S] [--device D] [--json]
    essctl cache agg (--device D | --bank SITE/bankN | --site S --table T)
                     [--resolution 1m|15m|1h|1d] [--last N] [--measure M ...] [--json]
    essctl cache anomalies --site S [--count N] [--json]

Reads Redis at `ESS_REDIS_URL` under `ESS_CACHE_KEY_PREFIX` (default `ess`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError

from ess_cache_layout.keys import bank_series, device_series, site_series
from ess_cache_layout.measures import MEASURE_NAMES, RESOLUTION_BY_NAME, bucket_start
from ess_cache_layout.read import CacheReader, describe
from ess_cache_layout.settings import CacheReadSettings
from ess_common.model import TABLES, DeviceId
from ess_common.settings import ConfigError, load_settings
from ess_ctl.cli import Exit, Parser


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    group = groups.add_parser("cache", help="latest readings, aggregates and anomalies in Redis")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    latest = commands.add_parser("latest", help="site summaries, or the devices of one site")
    latest.add_argument("--site", help="one site: its summary and each device's latest reading")
    latest.add_argument("--device", help="one device key, e.g. site1/bank1/rack3")
    latest.add_argument("--json", action="store_true", help="JSON on stdout")
    latest.set_defaults(handler=_handler(_latest))

    agg = commands.add_parser("agg", help="aggregates of a device, a bank's racks or a site")
    which = agg.add_mutually_exclusive_group(required=True)
    which.add_argument("--device", type=_device_key, help="a device key")
    which.add_argument("--bank", type=_bank_key, help="the racks of a bank: SITE/bankN")
    which.add_argument("--site", help="all devices of --table at a site")
    agg.add_argument("--table", choices=TABLES, help="with --site: which devices")
    agg.add_argument("--resolution", choices=list(RESOLUTION_BY_NAME), default="1m")
    agg.add_argument("--last", type=_positive, default=10, help="buckets up to now (10)")
    agg.add_argument("--measure", action="append", choices=MEASURE_NAMES, help="repeatable")
    agg.add_argument("--json", action="store_true", help="JSON on stdout")
    agg.set_defaults(handler=_handler(_agg))

    anomalies = commands.add_parser("anomalies", help="the newest entries of a site's feed")
    anomalies.add_argument("--site", required=True)
    anomalies.add_argument("--count", type=_positive, default=20)
    anomalies.add_argument("--json", action="store_true", help="JSON on stdout")
    anomalies.set_defaults(handler=_handler(_anomalies))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _device_key(text: str) -> str:
    try:
        return DeviceId.parse(text).key
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bank_key(text: str) -> str:
    try:
        device = DeviceId.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if device.table != "bank":
        raise argparse.ArgumentTypeError(f"{text!r} is not a bank (SITE/bankN)")
    return text


def _handler(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_settings(CacheReadSettings)
        except ConfigError as exc:
            print(f"essctl cache: {exc}", file=sys.stderr)
            return Exit.CONFIG
        if args.command == "agg" and args.site and not args.table:
            print("essctl cache agg: --site needs --table", file=sys.stderr)
            return Exit.USAGE
        try:
            code: int = asyncio.run(_with_reader(settings, command, args))
        except RedisError as exc:
            print(f"essctl cache: Redis error: {exc}", file=sys.stderr)
            return Exit.FAILED
        return code

    return run


async def _with_reader(settings: CacheReadSettings, command: Any, args: argparse.Namespace) -> int:
    reader = CacheReader.connect(settings.redis_url, settings.cache_key_prefix)
    try:
        code: int = await command(reader, args)
        return code
    finally:
        await reader.close()


def _iso(slot: int) -> str:
    return datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dump(doc: object) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


async def _latest(reader: CacheReader, args: argparse.Namespace) -> int:
    if args.device:
        site = args.device.split("/", 1)[0]
        entries = await reader.latest(site, args.device)
        if not entries:
            print(f"essctl cache latest: no reading of {args.device} in the cache", file=sys.stderr)
            return Exit.FAILED
        _dump(entries[0].reading) if args.json else _print_readings(entries)
        return Exit.OK
    if args.site:
        summary = await reader.summary(args.site)
        entries = await reader.latest(args.site)
        missing = [] if summary else [await _without_summary(reader, args.site)]
        if args.json:
            _dump(
                {"summary": summary, "without_summary": missing}
                | {"devices": [e.reading for e in entries]}
            )
        else:
            _print_summaries([summary] if summary else [], missing)
            _print_readings(entries)
        return Exit.OK
    summaries, missing = [], []
    for site in await reader.sites():
        if summary := await reader.summary(site):
            summaries.append(summary)
        else:
            missing.append(await _without_summary(reader, site))
    if args.json:
        _dump({"sites": summaries, "without_summary": missing})
    elif not summaries and not missing:
        print("the cache holds no site (empty, or flushed and not rebuilt yet)")
    else:
        _print_summaries(summaries, missing)
    return Exit.OK


async def _without_summary(reader: CacheReader, site: str) -> dict[str, Any]:
    """A site whose summary expired (the cache service stopped computing them)."""
    newest = await reader.newest_slot(site)
    age = None if newest is None else int(time.time()) - newest
    return {"site": site, "newest_slot": newest, "age_s": age}


def _print_summaries(
    summaries: list[dict[str, Any]], missing: list[dict[str, Any]] | None = None
) -> None:
    print(
        f"{'site':<12} {'devices':>7} {'stale':>5} {'pcs kW':>10} {'rack SoC min/mean/max':>23}"
        f"  {'hottest module':<30} worst cell spread"
    )
    for s in summaries:
        soc = s.get("rack_soc_pct")
        soc_text = f"{soc['min']:.1f}/{soc['mean']:.1f}/{soc['max']:.1f}" if soc else "-"
        power = s.get("pcs_power_w")
        power_text = f"{power / 1000:.1f}" if power is not None else "-"
        hot = s.get("hottest_module")
        hot_text = f"{hot['device']} {hot['module_t_max_c']:.1f} C" if hot else "-"
        spread = s.get("worst_cell_spread")
        spread_text = f"{spread['device']} {spread['spread_v'] * 1000:.0f} mV" if spread else "-"
        print(
            f"{s['site']:<12} {s['devices']:>7} {len(s['stale']):>5} {power_text:>10}"
            f" {soc_text:>23}  {hot_text:<30} {spread_text}"
        )
    for m in missing or []:
        newest = (
            f"newest data {m['age_s']} s old ({_iso(m['newest_slot'])})"
            if m["newest_slot"] is not None
            else "no device data"
        )
        print(f"{m['site']:<12} no summary (expired: is the cache service running?); {newest}")


def _print_readings(entries: list[Any]) -> None:
    now = int(time.time())
    print(f"{'device':<22} {'slot':<20} {'age s':>6}  values")
    for e in sorted(entries, key=lambda e: e.device):
        values = " ".join(f"{k}={v}" for k, v in sorted(e.reading.get("values", {}).items()))
        print(f"{e.device:<22} {_iso(e.slot):<20} {now - e.slot:>6}  {values}")


async def _agg(reader: CacheReader, args: argparse.Namespace) -> int:
    if args.device:
        series = device_series(args.device)
    elif args.bank:
        bank = DeviceId.parse(args.bank)
        series = bank_series(bank.site, bank.bank or 0)
    else:
        series = site_series(args.site, args.table)
    seconds = RESOLUTION_BY_NAME[args.resolution].seconds
    now = int(time.time())
    start = bucket_start(now, seconds) - (args.last - 1) * seconds
    buckets = await reader.aggregates(series, args.resolution, start, now + 1)
    wanted = set(args.measure or MEASURE_NAMES)
    rows: list[dict[str, Any]] = [
        {
            "start": _iso(b),
            "start_epoch": b,
            "measures": {k: v for k, v in describe(series, bucket).items() if k in wanted},
        }
        for b, bucket in buckets
    ]
    if args.json:
        _dump({"series": series, "resolution": args.resolution, "buckets": rows})
        return Exit.OK
    print(f"{series} at {args.resolution}, last {args.last} buckets ({len(rows)} present)")
    print(
        f"{'bucket':<20} {'measure':<13} {'count':>6} {'min':>12} {'mean':>12} {'max':>12}"
        f" {'first':>12} {'last':>12}"
    )
    for row in rows:
        for name, a in row["measures"].items():
            print(
                f"{row['start']:<20} {name:<13} {a['count']:>6} {a['min']:>12.4f}"
                f" {a['mean']:>12.4f} {a['max']:>12.4f} {a['first']:>12.4f} {a['last']:>12.4f}"
            )
    return Exit.OK


async def _anomalies(reader: CacheReader, args: argparse.Namespace) -> int:
    entries = await reader.anomalies(args.site, args.count)
    if args.json:
        _dump(
            {"site": args.site, "anomalies": [e.__dict__ | {"at": _iso(e.slot)} for e in entries]}
        )
        return Exit.OK
    print(f"{'slot':<20} {'device':<22} {'rule':<24} {'value':>12} {'limit':>10}")
    for e in entries:
        print(f"{_iso(e.slot):<20} {e.device:<22} {e.rule:<24} {e.value:>12.4f} {e.limit:>10.4f}")
    return Exit.OK
