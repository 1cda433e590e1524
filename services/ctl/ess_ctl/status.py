"""`essctl status`: a live screen of the pipeline, read from the services' /metrics.

    essctl status [--once] [--json] [--interval S] [--target NAME=URL ...]

Reads each service's /metrics directly (not Prometheus, so it works without
it); by default the ports `make run` gives them, plus its supervisor's restart
counts. `--target` replaces them (for example through `kubectl port-forward`).
Rates and freshness quantiles are over one interval: `--once` samples twice,
`interval` apart, and prints one frame; `--json` prints it as one document.
When stdout is not a terminal it prints plain lines instead of redrawing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import orjson
from rich.console import Console

from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import fail_usage
from ess_stack.config import StackConfig
from ess_stack.run import local_targets
from ess_status.render import plain_lines, render
from ess_status.watch import Watch, show_live


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser(
        "status", help="live view: rates, lag, freshness, loss, spool, DLQ, restarts"
    )
    cmd.add_argument("--once", action="store_true", help="print one frame and exit")
    cmd.add_argument("--json", action="store_true", help="one JSON document and exit")
    cmd.add_argument("--interval", type=float, default=2.0, help="seconds between frames")
    cmd.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a /metrics URL to read (repeat); replaces the local `make run` ports",
    )
    cmd.set_defaults(handler=run_status)


def _targets(given: list[str]) -> dict[str, str] | str:
    """name -> URL, or what is wrong with one of them."""
    targets = {}
    for item in given:
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            return f"--target {item!r}: expected NAME=http://host:port/metrics"
        targets[name] = url
    return targets


def run_status(args: argparse.Namespace) -> int:
    targets = _targets(args.target)
    if isinstance(targets, str):
        return fail_usage("status", targets)
    if args.interval <= 0:
        return fail_usage("status", "--interval must be above 0")
    cfg = StackConfig()
    watch = Watch(
        targets or local_targets(cfg),
        {
            "prometheus": f"http://{cfg.host}:{cfg.prometheus_port}",
            "dashboards": "monitoring/grafana/dashboards/*.json (Grafana: docker compose, :3000)",
        },
    )
    tty = sys.stdout.isatty()
    if args.json or args.once:
        watch.frame()
        time.sleep(args.interval)
        frame = watch.frame()
        if args.json:
            print(orjson.dumps(frame, option=orjson.OPT_INDENT_2).decode())
        elif tty:
            Console().print(render(frame))
        else:
            print("\n".join(plain_lines(frame)), flush=True)
        return Exit.OK
    with contextlib.suppress(KeyboardInterrupt):
        show_live(watch, args.interval, tty=tty, emit=lambda line: print(line, flush=True))
    return Exit.OK
