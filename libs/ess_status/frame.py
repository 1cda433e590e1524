"""One frame of the pipeline's status, built from the services' `/metrics` texts. Pure.

Rates and freshness quantiles come from two scrapes `dt` seconds apart
(counter and bucket deltas: what happened in between); gauges are read from the
newest scrape. Loss severity uses the alert rules' bounds: above 2 % warning,
above 5 % critical. `make run`'s supervisor publishes restarts as
`ess_run_service_restarts_total{service}`; without it restarts are unknown (None).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ess_status.histogram import quantile

WARNING_ABOVE, CRITICAL_ABOVE = 0.02, 0.05
Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]
Texts = Mapping[str, str | None]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def severity(ratio: float) -> str:
    return "critical" if ratio > CRITICAL_ABOVE else "warning" if ratio > WARNING_ABOVE else "ok"


def _merge(texts: Texts) -> Samples:
    merged: Samples = {}
    for text in texts.values():
        merged.update(parse(text) if text else {})
    return merged


def _sum_by(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for (n, labels), value in samples.items():
        if n == name:
            as_dict = dict(labels)
            totals[tuple(as_dict.get(k, "") for k in keys)] += value
    return dict(totals)


class _Window:
    """The newest scrape and the one before it, `dt` seconds apart."""

    def __init__(self, cur: Samples, prev: Samples | None, dt: float) -> None:
        self.cur, self.prev, self.dt = cur, prev, dt

    def gauge(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return _sum_by(self.cur, name, *keys)

    def delta(self, name: str, *keys: str) -> dict[tuple[str, ...], float] | None:
        if self.prev is None or self.dt <= 0:
            return None
        before = _sum_by(self.prev, name, *keys)
        # a restarted service starts its counters again: count from zero then
        return {
            k: v - before.get(k, 0.0) if v >= before.get(k, 0.0) else v
            for k, v in _sum_by(self.cur, name, *keys).items()
        }

    def rate(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        deltas = self.delta(name, *keys)
        if deltas is None:
            return {k: 0.0 for k in self.gauge(name, *keys)}
        return {k: v / self.dt for k, v in deltas.items()}

    def quantiles(self, histogram: str, key: str) -> dict[str, dict[str, float | None]]:
        """p50/p99 per `key` of a histogram over the window (None: nothing observed)."""
        buckets = self.delta(f"{histogram}_bucket", key, "le") or self.gauge(
            f"{histogram}_bucket", key, "le"
        )
        per_key: dict[str, dict[float, float]] = defaultdict(dict)
        for (k, le), count in buckets.items():
            per_key[k][float(le)] = count
        return {
            k: {"p50_s": quantile(0.5, b), "p99_s": quantile(0.99, b)} for k, b in per_key.items()
        }


def _first(values: Mapping[tuple[str, ...], float], default: float = 0.0) -> float:
    return sum(values.values()) if values else default


def _services(current: Texts, w: _Window) -> list[dict[str, Any]]:
    """Up: its process runs (the supervisor's word) or, without a supervisor, /metrics answers."""
    restarts = w.gauge("ess_run_service_restarts_total", "service")
    running = w.gauge("ess_run_service_up", "service")
    out = []
    for name in sorted(current.keys() - {"run"}):
        answers = current[name] is not None
        process = running.get((name,))
        out.append(
            {
                "name": name,
                "up": answers if process is None else process > 0,
                "metrics": answers,
                "restarts": restarts.get((name,)) if restarts else None,
            }
        )
    return out


def _readings(w: _Window) -> list[dict[str, Any]]:
    rates = w.rate("ess_collector_readings_total", "site", "table")
    down = w.gauge("ess_collector_device_up", "site", "device")
    down_per_site: dict[str, int] = defaultdict(int)
    for (site, _device), up in down.items():
        down_per_site[site] += int(up == 0)
    return [
        {"site": site, "table": table, "per_s": rate, "devices_down": down_per_site[site]}
        for (site, table), rate in sorted(rates.items())
    ]


def _clusters(w: _Window) -> list[dict[str, Any]]:
    rows = w.rate("ess_sink_rows_written_total", "cluster")
    lag = w.gauge("ess_sink_lag_messages", "cluster")
    dlq = w.gauge("ess_sink_dlq_messages_total", "cluster")
    fresh = w.quantiles("ess_sink_freshness_seconds", "cluster")
    names = sorted({k[0] for k in (*rows, *lag, *dlq)} | set(fresh))
    return [
        {
            "cluster": c,
            "rows_per_s": rows.get((c,), 0.0),
            "lag": lag.get((c,), 0.0),
            "freshness_p50_s": fresh.get(c, {}).get("p50_s"),
            "freshness_p99_s": fresh.get(c, {}).get("p99_s"),
            "dlq": dlq.get((c,), 0.0),
        }
        for c in names
    ]


def _loss(w: _Window) -> list[dict[str, Any]]:
    rows = []
    for (n, labels), value in sorted(w.cur.items()):
        as_dict = dict(labels)
        if n == "ess_gapdetector_loss_ratio" and as_dict.get("kind") == "total":
            as_dict.pop("kind")
            rows.append({**as_dict, "ratio": value, "severity": severity(value)})
    return sorted(rows, key=lambda r: -float(r["ratio"]))


def _cache(w: _Window) -> dict[str, Any]:
    fresh = w.quantiles("ess_cache_freshness_seconds", "")
    return {
        "applied_per_s": _first(w.rate("ess_cache_readings_applied_total")),
        "freshness_p50_s": fresh.get("", {}).get("p50_s"),
        "freshness_p99_s": fresh.get("", {}).get("p99_s"),
        "anomalies": _first(w.gauge("ess_cache_anomalies_raised_total")),
    }


def _optional(w: _Window, name: str) -> float | None:
    values = w.gauge(name)
    return _first(values) if values else None


def build_frame(
    current: Texts, previous: Texts | None, dt: float, links: Mapping[str, str]
) -> dict[str, Any]:
    """`current`/`previous`: target name -> its /metrics text (None: not reachable)."""
    w = _Window(_merge(current), _merge(previous) if previous is not None else None, dt)
    parts: dict[str, Callable[[_Window], Any]] = {
        "readings": _readings,
        "clusters": _clusters,
        "loss": _loss,
        "cache": _cache,
    }
    frame: dict[str, Any] = {"services": _services(current, w)}
    frame.update({key: part(w) for key, part in parts.items()})
    frame["collector"] = {
        "spool_depth": _first(w.gauge("ess_collector_spool_depth")),
        "spool_oldest_age_s": _first(w.gauge("ess_collector_spool_oldest_age_seconds")),
        "overruns_per_s": _first(w.rate("ess_collector_overruns_total")),
    }
    frame["gapdetector"] = {
        "last_window_age_s": _optional(w, "ess_gapdetector_last_window_age_seconds"),
        "pending_replays": _optional(w, "ess_gapdetector_pending_replays"),
        "kafka_lag": _optional(w, "ess_gapdetector_kafka_lag_messages"),
    }
    frame["archive"] = {
        "rows_per_s": _first(w.rate("ess_archive_rows_archived_total")),
        "staged_rows": _optional(w, "ess_archive_staged_rows"),
        "holding": _optional(w, "ess_archive_holding"),
    }
    frame["links"] = dict(links)
    return frame
