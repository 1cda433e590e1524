"""Reporting a window's loss: gauges, one JSON log line per cluster and site, daily rows.

Daily results go to `loss_report` in every reachable cluster (each holds the
figures of both, so either one alone still tells the story; see `clusters`
for the table). `device_id = '*'` rows are a site's aggregate, `site = '*'`
the table's.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from ess_gapdetector.evaluate import WindowResult
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.ports import ClusterAccess
from ess_loss.lossmath import SlotCounts

log = logging.getLogger(__name__)

_LEVEL = {"ok": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


def log_fields(result: WindowResult, cluster: str, site: str, counts: SlotCounts) -> dict[str, Any]:
    return {
        "period": result.window.period,
        "period_start": result.window.start.isoformat(),
        "period_end": result.window.end.isoformat(),
        "cluster": cluster,
        "site": site,
        "table": result.table,
        "expected": counts.expected,
        "present": counts.present,
        "source_loss_pct": round(counts.source_pct, 4),
        "sink_loss_pct": round(counts.sink_pct, 4),
        "loss_pct": round(counts.total_pct, 4),
        "severity": counts.severity,
        "table_bytes": result.table_bytes.get(cluster),
        "pending": counts.pending,
        "maintenance": counts.maintenance,
        "sink_lag_messages": result.sink_lag.get(cluster),
        "final": result.final,
        "time_zone": result.window.zone,
    }


GAUGE_KINDS = ("source", "sink", "total", "pending")


def publish(result: WindowResult, metrics: GapMetrics) -> None:
    """Gauges and one log line per (cluster, site) of this window.

    A site with nothing expected any more (its devices retired, or all in
    maintenance) loses its gauges instead of showing its last figures forever.
    """
    w, table = result.window, result.table
    for cluster in result.clusters:
        sites = result.loss.by_site(cluster)
        shown: set[str] = set()
        for site, counts in [*sorted(sites.items()), ("all", result.loss.total(cluster))]:
            if counts.expected == 0:
                continue
            shown.add(site)
            for kind, value in zip(
                GAUGE_KINDS,
                (counts.source_loss, counts.sink_loss, counts.total_loss, counts.pending),
                strict=True,
            ):
                metrics.loss.labels(cluster, site, table, w.period, kind).set(
                    value / counts.expected
                )
            if site == "all":
                continue
            pending = f", {counts.pending} slots pending" if counts.pending else ""
            log.log(
                _LEVEL[counts.severity],
                "loss %s %s %s %s: %.3f %% (%s)%s",
                w,
                cluster,
                site,
                table,
                counts.total_pct,
                counts.severity,
                pending,
                extra=log_fields(result, cluster, site, counts),
            )
        _drop_gauges_of_gone_sites(metrics, (cluster, table, w.period, w.zone), shown)
        metrics.windows.labels(table, w.period).inc()
        metrics.last_window.set_to_current_time()


def _drop_gauges_of_gone_sites(
    metrics: GapMetrics, key: tuple[str, str, str, str], shown: set[str]
) -> None:
    cluster, table, period, _ = key
    for site in metrics.sites_shown.get(key, set()) - shown:
        for kind in GAUGE_KINDS:
            with contextlib.suppress(KeyError):
                metrics.loss.remove(cluster, site, table, period, kind)
        log.info(
            "no device of %s %s is expected any more: its %s gauges removed", site, table, period
        )
    metrics.sites_shown[key] = shown


def report_rows(result: WindowResult) -> list[tuple[Any, ...]]:
    w = result.window
    rows: list[tuple[Any, ...]] = []

    def row(cluster: str, site: str, device: str, c: SlotCounts) -> tuple[Any, ...]:
        return (
            w.period,
            w.start,
            w.end,
            cluster,
            result.table,
            site,
            device,
            c.expected,
            c.reached,
            c.present,
            c.source_pct,
            c.sink_pct,
            c.total_pct,
            c.severity,
            result.table_bytes.get(cluster),
            c.pending,
            c.maintenance,
            w.zone,
            result.final,
        )

    for cluster in result.clusters:
        rows.append(row(cluster, "*", "*", result.loss.total(cluster)))
        for site, counts in sorted(result.loss.by_site(cluster).items()):
            rows.append(row(cluster, site, "*", counts))
        for d in result.loss.devices:
            if cluster in d.counts:
                rows.append(row(cluster, d.site, d.device, d.counts[cluster]))
    return rows


async def store(result: WindowResult, clusters: ClusterAccess) -> None:
    """The window's rows into `loss_report` on every reachable cluster."""
    await clusters.store_report(report_rows(result))
