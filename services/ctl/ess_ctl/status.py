"""`essctl status`: a live screen of the pipeline, read from the services' /metrics.

    essctl status [--once] [--json] [--interval S]

Reads each `make run` service's /metrics directly (not Prometheus, so it works
without it); rates are deltas between two scrapes. `--once` prints one frame
(after a one-interval sample), `--json` one document; when stdout is not a
terminal it prints plain lines. The frame itself is `ess_ctl.status_frame`.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ess_ctl.cli import Exit, Parser
from ess_status.frame import build_frame, plain_lines

PORTS = {
    "collector": 18105,
    "sink-local": 18101,
    "sink-cloud": 18102,
    "cache": 18103,
    "gapdetector": 18104,
}
LINKS = {
    "prometheus": "http://127.0.0.1:19090",
    "dashboards": "monitoring/grafana/dashboards/*.json (Grafana: docker compose, :3000)",
}
COLOURS = {"ok": "green", "warning": "yellow", "critical": "red"}


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser("status", help="live view: rates, lag, freshness, loss, spool, DLQ")
    cmd.add_argument("--once", action="store_true", help="print one frame and exit")
    cmd.add_argument("--json", action="store_true", help="one JSON document and exit")
    cmd.add_argument("--interval", type=float, default=2.0, help="seconds between frames")
    cmd.set_defaults(handler=run_status)


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text: str = resp.read().decode()
            return text
    except OSError:
        return None


def scrape_all() -> dict[str, str | None]:
    return {name: scrape(port) for name, port in PORTS.items()}


def render(frame: dict[str, Any]) -> Table:
    table = Table(title="ESS pipeline", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, up in frame["services"].items():
        table.add_row(name, "[green]up[/]" if up else "[red]DOWN[/]")
    for t, v in sorted(frame["readings_per_s"].items()):
        table.add_row(f"readings/s {t}", f"{v:.1f}")
    for c, v in sorted(frame["rows_per_s"].items()):
        fresh = frame["freshness_s"].get(c)
        table.add_row(f"{c} rows/s", f"{v:.1f}")
        table.add_row(
            f"{c} lag / freshness",
            f"{frame['lag'].get(c, 0):,.0f} / " + ("-" if fresh is None else f"{fresh:.1f}s"),
        )
        table.add_row(f"{c} DLQ", f"{frame['dlq'].get(c, 0):,.0f}")
    for row in frame["loss"]:
        colour = COLOURS[row["severity"]]
        where = (
            f"loss {row.get('cluster')}/{row.get('site')}/{row.get('table')} {row.get('period')}"
        )
        table.add_row(where, f"[{colour}]{100 * row['ratio']:.2f} %[/]")
    table.add_row("spool depth", f"{frame['spool_depth']:,.0f}")
    table.add_row("anomalies", f"{frame['anomalies']:,.0f}")
    for name, url in frame["links"].items():
        table.add_row(name, url)
    return table


def _next(
    previous: dict[str, str | None], since: float
) -> tuple[dict[str, Any], dict[str, str | None], float]:
    current, now = scrape_all(), time.monotonic()
    return build_frame(current, previous, now - since, LINKS), current, now


def run_status(args: argparse.Namespace) -> int:
    previous, since = scrape_all(), time.monotonic()
    time.sleep(args.interval)
    frame, previous, since = _next(previous, since)
    if args.json:
        print(orjson.dumps(frame, option=orjson.OPT_INDENT_2).decode())
        return Exit.OK
    if args.once or not sys.stdout.isatty():
        if sys.stdout.isatty():
            Console().print(render(frame))
        else:
            print("\n".join(plain_lines(frame)), flush=True)
        if args.once:
            return Exit.OK
    try:
        if not sys.stdout.isatty():
            while True:
                time.sleep(args.interval)
                frame, previous, since = _next(previous, since)
                print("\n".join(plain_lines(frame)), flush=True)
        with Live(render(frame), refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(args.interval)
                frame, previous, since = _next(previous, since)
                live.update(render(frame))
    except KeyboardInterrupt:
        return Exit.OK
