"""Reporting a window's loss: gauges, one JSON log line per cluster and site, daily rows.

Daily results go to `loss_report` in every reachable cluster (each holds the
figures of both, so either one alone still tells the story). The table is
the detector's own and is created if missing; rows are upserted, so a
re-evaluated day overwrites its earlier figures. `device_id = '*'` rows are a
site's aggregate, `site = '*'` the table's.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from ess_common.db_errors import DB_FAILURES
from ess_gapdetector.evaluate import WindowResult
from ess_gapdetector.metrics import GapMetrics
from ess_loss.lossmath import SlotCounts
from ess_tables.links import ClusterLink

log = logging.getLogger(__name__)

LOSS_REPORT_DDL = """
CREATE TABLE IF NOT EXISTS loss_report (
    period text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    cluster text NOT NULL,
    table_name text NOT NULL,
    site text NOT NULL,
    device_id text NOT NULL,
    expected bigint NOT NULL,
    reached bigint NOT NULL,
    present bigint NOT NULL,
    source_loss_pct double precision NOT NULL,
    sink_loss_pct double precision NOT NULL,
    loss_pct double precision NOT NULL,
    severity text NOT NULL,
    table_bytes bigint,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period, period_start, cluster, table_name, site, device_id)
)
"""

_UPSERT = """
INSERT INTO loss_report (period, period_start, period_end, cluster, table_name, site,
    device_id, expected, reached, present, source_loss_pct, sink_loss_pct, loss_pct,
    severity, table_bytes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (period, period_start, cluster, table_name, site, device_id) DO UPDATE SET
    period_end = EXCLUDED.period_end, expected = EXCLUDED.expected,
    reached = EXCLUDED.reached, present = EXCLUDED.present,
    source_loss_pct = EXCLUDED.source_loss_pct, sink_loss_pct = EXCLUDED.sink_loss_pct,
    loss_pct = EXCLUDED.loss_pct, severity = EXCLUDED.severity,
    table_bytes = EXCLUDED.table_bytes, computed_at = now()
"""

_LEVEL = {"ok": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


async def ensure_loss_report(conn: asyncpg.Connection) -> None:
    await conn.execute(LOSS_REPORT_DDL)


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
    }


def publish(result: WindowResult, metrics: GapMetrics) -> None:
    """Gauges and one log line per (cluster, site) of this window."""
    w, table = result.window, result.table
    for cluster in result.clusters:
        sites = result.loss.by_site(cluster)
        for site, counts in [*sorted(sites.items()), ("all", result.loss.total(cluster))]:
            if counts.expected == 0:
                continue
            for kind, value in (
                ("source", counts.source_loss),
                ("sink", counts.sink_loss),
                ("total", counts.total_loss),
            ):
                metrics.loss.labels(cluster, site, table, w.period, kind).set(
                    value / counts.expected
                )
            if site == "all":
                continue
            log.log(
                _LEVEL[counts.severity],
                "loss %s %s %s %s: %.3f %% (%s)",
                w,
                cluster,
                site,
                table,
                counts.total_pct,
                counts.severity,
                extra=log_fields(result, cluster, site, counts),
            )
        metrics.windows.labels(table, w.period).inc()


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
        )

    for cluster in result.clusters:
        rows.append(row(cluster, "*", "*", result.loss.total(cluster)))
        for site, counts in sorted(result.loss.by_site(cluster).items()):
            rows.append(row(cluster, site, "*", counts))
        for d in result.loss.devices:
            if cluster in d.counts:
                rows.append(row(cluster, d.site, d.device, d.counts[cluster]))
    return rows


async def store(result: WindowResult, links: dict[str, ClusterLink], metrics: GapMetrics) -> None:
    rows = report_rows(result)
    for cluster, link in links.items():
        conn = await link.get()
        if conn is None:
            continue
        try:
            async with conn.transaction():
                await ensure_loss_report(conn)
                await conn.executemany(_UPSERT, rows)
        except DB_FAILURES as exc:
            metrics.cluster_errors.labels(cluster).inc()
            log.warning("loss_report on %s not stored: %s", cluster, exc)
            link.failed()
