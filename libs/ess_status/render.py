"""A status frame drawn for a person: `rich` tables for a terminal, plain lines otherwise."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

COLOURS = {"ok": "green", "warning": "yellow", "critical": "red"}
LOSS_ROWS = 12  # the worst ones; --json has all of them


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _state(service: Mapping[str, Any]) -> str:
    if not service["up"]:
        return "DOWN"
    return "up" if service["metrics"] else "up, no /metrics"


def _restarts(service: Mapping[str, Any]) -> str:
    return "-" if service["restarts"] is None else f"{service['restarts']:.0f}"


def _readings_grid(frame: Mapping[str, Any]) -> tuple[list[str], dict[str, dict[str, float]]]:
    tables = sorted({r["table"] for r in frame["readings"]})
    grid: dict[str, dict[str, float]] = defaultdict(dict)
    for r in frame["readings"]:
        grid[r["site"]][r["table"]] = r["per_s"]
        grid[r["site"]]["down"] = r["devices_down"]
    return tables, grid


def _loss_label(row: Mapping[str, Any]) -> str:
    return f"{row.get('cluster')}/{row.get('site')}/{row.get('table')} {row.get('period')}"


def render(frame: Mapping[str, Any], events: Sequence[str] = ()) -> RenderableType:
    services = Table(title="services", title_justify="left")
    for col in ("service", "state", "restarts"):
        services.add_column(col)
    for svc in frame["services"]:
        colour = "green" if svc["up"] and svc["metrics"] else "yellow" if svc["up"] else "red"
        services.add_row(svc["name"], f"[{colour}]{_state(svc)}[/]", _restarts(svc))

    tables, grid = _readings_grid(frame)
    readings = Table(title="readings/s per site", title_justify="left")
    readings.add_column("site")
    for t in tables:
        readings.add_column(t, justify="right")
    readings.add_column("devices down", justify="right")
    for site, row in sorted(grid.items()):
        down = int(row.get("down", 0))
        cells = [f"{row.get(t, 0.0):.1f}" for t in tables]
        readings.add_row(site, *cells, f"[red]{down}[/]" if down else "0")

    clusters = Table(title="clusters", title_justify="left")
    for col in ("cluster", "rows/s", "lag", "fresh p50", "fresh p99", "DLQ"):
        clusters.add_column(col, justify="right")
    for c in frame["clusters"]:
        clusters.add_row(
            c["cluster"],
            f"{c['rows_per_s']:.1f}",
            _n(c["lag"]),
            _s(c["freshness_p50_s"]),
            _s(c["freshness_p99_s"]),
            _n(c["dlq"]),
        )

    loss = Table(title="loss of the last windows", title_justify="left")
    loss.add_column("cluster/site/table window")
    loss.add_column("loss", justify="right")
    for row in frame["loss"][:LOSS_ROWS]:
        colour = COLOURS[row["severity"]]
        loss.add_row(_loss_label(row), f"[{colour}]{100 * row['ratio']:.2f} %[/]")
    if not frame["loss"]:
        loss.add_row("no window evaluated yet", "-")
    if len(frame["loss"]) > LOSS_ROWS:
        loss.add_row(f"... {len(frame['loss']) - LOSS_ROWS} more (lower)", "")

    parts: list[RenderableType] = [services, readings, clusters, loss, Text(_footer(frame))]
    parts.extend(Text(e, style="yellow") for e in events)
    return Group(*parts)


def _footer(frame: Mapping[str, Any]) -> str:
    col, cache, gap, arc = (
        frame["collector"],
        frame["cache"],
        frame["gapdetector"],
        frame["archive"],
    )
    holding = " HOLDING (object store away)" if arc["holding"] else ""
    return "\n".join(
        [
            f"spool {col['spool_depth']:,.0f} readings (oldest {col['spool_oldest_age_s']:.0f}s)"
            f"  overruns/s {col['overruns_per_s']:.1f}",
            f"cache applied/s {cache['applied_per_s']:.1f}"
            f"  fresh p50 {_s(cache['freshness_p50_s'])} p99 {_s(cache['freshness_p99_s'])}"
            f"  anomalies {cache['anomalies']:,.0f}",
            f"gap detector: last window {_s(gap['last_window_age_s'])} ago,"
            f" pending replays {_n(gap['pending_replays'])}, kafka lag {_n(gap['kafka_lag'])}",
            f"archive rows/s {arc['rows_per_s']:.1f}, staged {_n(arc['staged_rows'])}{holding}",
            *(f"{name}: {url}" for name, url in frame["links"].items()),
        ]
    )


def plain_lines(frame: Mapping[str, Any]) -> list[str]:
    """The frame as plain lines (stdout not a terminal)."""
    lines = [
        "services: "
        + ", ".join(
            f"{s['name']} {_state(s)}"
            + ("" if s["restarts"] is None else f" (restarts {s['restarts']:.0f})")
            for s in frame["services"]
        )
    ]
    tables, grid = _readings_grid(frame)
    for site, row in sorted(grid.items()):
        per_table = ", ".join(f"{t} {row.get(t, 0.0):.1f}" for t in tables)
        lines.append(f"readings/s {site}: {per_table}; devices down {int(row.get('down', 0))}")
    for c in frame["clusters"]:
        lines.append(
            f"{c['cluster']}: rows/s {c['rows_per_s']:.1f}, lag {_n(c['lag'])},"
            f" freshness p50 {_s(c['freshness_p50_s'])} p99 {_s(c['freshness_p99_s'])},"
            f" dlq {_n(c['dlq'])}"
        )
    for row in frame["loss"][:LOSS_ROWS]:
        lines.append(f"loss {_loss_label(row)}: {100 * row['ratio']:.2f} % {row['severity']}")
    lines.extend(_footer(frame).splitlines())
    return lines
