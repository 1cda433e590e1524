"""One frame of `essctl status`, built from the services' `/metrics` texts. Pure.

Rates come from two scrapes `dt` seconds apart (counter deltas); gauges are
read from the newest scrape. Loss severity uses the alert rules' bounds:
above 2 % warning, above 5 % critical.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

WARNING_ABOVE, CRITICAL_ABOVE = 0.02, 0.05
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def _sum_by(samples: Samples, name: str, key: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for (n, labels), value in samples.items():
        if n == name:
            totals[dict(labels).get(key, "")] += value
    return dict(totals)


def _rates(cur: Samples, prev: Samples | None, name: str, key: str, dt: float) -> dict[str, float]:
    now = _sum_by(cur, name, key)
    if prev is None or dt <= 0:
        return {k: 0.0 for k in now}
    before = _sum_by(prev, name, key)
    return {k: max(0.0, v - before.get(k, 0.0)) / dt for k, v in now.items()}


def severity(ratio: float) -> str:
    return "critical" if ratio > CRITICAL_ABOVE else "warning" if ratio > WARNING_ABOVE else "ok"


def build_frame(
    current: Mapping[str, str | None],
    previous: Mapping[str, str | None] | None,
    dt: float,
    links: Mapping[str, str],
) -> dict[str, Any]:
    """`current`/`previous`: service name -> its /metrics text (None: not reachable)."""
    cur: Samples = {}
    prev: Samples = {}
    for text in current.values():
        cur.update(parse(text) if text else {})
    for text in (previous or {}).values():
        prev.update(parse(text) if text else {})
    old = prev if previous is not None else None
    loss = [
        {**dict(labels), "ratio": value, "severity": severity(value)}
        for (n, labels), value in sorted(cur.items())
        if n == "ess_gapdetector_loss_ratio" and dict(labels).get("kind") == "total"
    ]
    fresh_sum = _rates(cur, old, "ess_sink_freshness_seconds_sum", "cluster", dt)
    fresh_n = _rates(cur, old, "ess_sink_freshness_seconds_count", "cluster", dt)
    return {
        "services": {name: text is not None for name, text in current.items()},
        "readings_per_s": _rates(cur, old, "ess_collector_readings_total", "table", dt),
        "rows_per_s": _rates(cur, old, "ess_sink_rows_written_total", "cluster", dt),
        "lag": _sum_by(cur, "ess_sink_lag_messages", "cluster"),
        "freshness_s": {c: fresh_sum[c] / n for c, n in fresh_n.items() if n > 0},
        "loss": loss,
        "spool_depth": sum(_sum_by(cur, "ess_collector_spool_depth", "").values()),
        "dlq": _sum_by(cur, "ess_sink_dlq_messages_total", "cluster"),
        "anomalies": sum(_sum_by(cur, "ess_cache_anomalies_raised_total", "").values()),
        "links": dict(links),
    }


def plain_lines(frame: Mapping[str, Any]) -> list[str]:
    """The frame as plain lines (stdout not a terminal)."""
    lines = [
        "services: "
        + ", ".join(f"{s} {'up' if up else 'DOWN'}" for s, up in frame["services"].items())
    ]
    lines.append(
        "readings/s: "
        + ", ".join(f"{t} {v:.1f}" for t, v in sorted(frame["readings_per_s"].items()))
    )
    for cluster, rate in sorted(frame["rows_per_s"].items()):
        fresh = frame["freshness_s"].get(cluster)
        lines.append(
            f"{cluster}: rows/s {rate:.1f}, lag {frame['lag'].get(cluster, 0):,.0f},"
            f" freshness {'-' if fresh is None else f'{fresh:.1f}s'},"
            f" dlq {frame['dlq'].get(cluster, 0):,.0f}"
        )
    for row in frame["loss"]:
        lines.append(
            f"loss {row.get('cluster')}/{row.get('site')}/{row.get('table')} {row.get('period')}:"
            f" {100 * row['ratio']:.2f} % {row['severity']}"
        )
    lines.append(f"spool depth {frame['spool_depth']:,.0f}, anomalies {frame['anomalies']:,.0f}")
    lines.extend(f"{name}: {url}" for name, url in frame["links"].items())
    return lines
