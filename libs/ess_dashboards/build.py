"""The pipeline's Grafana dashboards, built with Grafana's own builders.

`python -m ess_dashboards` writes them to `monitoring/grafana/dashboards/*.json`
(provisioned by docker-compose); a unit test keeps the files equal to what this
module builds, and an integration test runs every panel's query against the
local stack's Prometheus. Every query reads a metric the services export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="ess-prometheus")
LOSS_WARNING, LOSS_CRITICAL = 0.02, 0.05  # as the alert rules


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    core: bool = False  # must return data while the pipeline runs
    thresholds: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    panels: tuple[PanelSpec, ...]


def _q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


OVERVIEW = DashboardSpec(
    "ess-overview",
    "ESS pipeline overview",
    (
        PanelSpec(
            "Readings per second by site and table",
            "reqps",
            (
                _q(
                    "sum by (site, table)"
                    ' (rate(ess_collector_polls_total{outcome=~"ok|partial"}[1m]))',
                    "{{site}} {{table}}",
                ),
            ),
            core=True,
        ),
        PanelSpec(
            "Rows committed per second by cluster",
            "reqps",
            (
                _q(
                    "sum by (cluster) (rate(ess_sink_rows_written_total[1m])"
                    " + rate(ess_sink_duplicates_skipped_total[1m]))",
                    "{{cluster}}",
                ),
            ),
            core=True,
        ),
        PanelSpec(
            "Freshness: slot to commit (p50, p99)",
            "s",
            (
                _q(
                    "histogram_quantile(0.5, sum by (cluster, le)"
                    " (rate(ess_sink_freshness_seconds_bucket[5m])))",
                    "p50 {{cluster}}",
                ),
                _q(
                    "histogram_quantile(0.99, sum by (cluster, le)"
                    " (rate(ess_sink_freshness_seconds_bucket[5m])))",
                    "p99 {{cluster}}",
                ),
            ),
            core=True,
        ),
        PanelSpec(
            "Sink lag by cluster",
            "short",
            (_q("sum by (cluster) (ess_sink_lag_messages)", "{{cluster}}"),),
            core=True,
        ),
    ),
)

LOSS_PANELS = tuple(
    PanelSpec(
        f"{kind.capitalize()} loss by cluster, site and table",
        "percentunit",
        (
            _q(
                f'max by (cluster, site, table) (ess_gapdetector_loss_ratio{{kind="{kind}",'
                f' period="minute", site!="all"}})',
                "{{cluster}} {{site}} {{table}}",
            ),
        ),
        thresholds=((LOSS_WARNING, "orange"), (LOSS_CRITICAL, "red")),
    )
    for kind in ("total", "source", "sink", "pending")
)

LOSS = DashboardSpec(
    "ess-loss",
    "ESS loss",
    (
        *LOSS_PANELS,
        PanelSpec(
            "Time since the last evaluated window",
            "s",
            (_q("time() - ess_gapdetector_last_window_timestamp_seconds", "gap detector"),),
        ),
        PanelSpec(
            "Replays and healed gaps",
            "short",
            (
                _q(
                    "sum by (cluster) (increase(ess_gapdetector_replay_requests_total[15m]))",
                    "requested {{cluster}}",
                ),
                _q(
                    "sum by (cluster, how) (increase(ess_gapdetector_gaps_closed_total[15m]))",
                    "closed {{cluster}} ({{how}})",
                ),
            ),
        ),
    ),
)

KAFKA_LAG = DashboardSpec(
    "ess-kafka-lag",
    "ESS Kafka lag",
    (
        PanelSpec(
            "Lag per group and partition",
            "short",
            (
                _q(
                    "sum by (cluster, table, partition) (ess_sink_lag_messages)",
                    "ess-sink-{{cluster}} {{table}}/{{partition}}",
                ),
            ),
            core=True,
        ),
        PanelSpec(
            "Gap detector read lag",
            "short",
            (_q("ess_gapdetector_kafka_lag_messages", "gap detector"),),
        ),
    ),
)

COLLECTOR = DashboardSpec(
    "ess-collector",
    "ESS collector health",
    (
        PanelSpec(
            "Devices down per site",
            "short",
            (_q("site:ess_collector_devices_down:count", "{{site}}"),),
            core=True,
        ),
        PanelSpec(
            "Connected endpoints per site",
            "short",
            (_q("sum by (site) (ess_collector_endpoint_connected)", "{{site}}"),),
            core=True,
        ),
        PanelSpec(
            "Poll failures per site",
            "reqps",
            (
                _q(
                    "sum by (site, reason) (rate(ess_collector_poll_failures_total[1m]))",
                    "{{site}} {{reason}}",
                ),
            ),
        ),
        PanelSpec(
            "Read lateness p99",
            "s",
            (
                _q(
                    "histogram_quantile(0.99, sum by (table, le)"
                    " (rate(ess_collector_slot_lateness_seconds_bucket[5m])))",
                    "{{table}}",
                ),
            ),
            core=True,
        ),
        PanelSpec(
            "Spool",
            "short",
            (
                _q("ess_collector_spool_depth", "depth"),
                _q("ess_collector_spool_oldest_age_seconds", "oldest age (s)"),
            ),
            core=True,
        ),
    ),
)

SINK = DashboardSpec(
    "ess-sink",
    "ESS sinks",
    (
        PanelSpec(
            "Rows per second by cluster and table",
            "reqps",
            (_q("cluster_table:ess_sink_rows_written:rate1m", "{{cluster}} {{table}}"),),
            core=True,
        ),
        PanelSpec(
            "Batch latency (p50, p99)",
            "s",
            (
                _q(
                    "histogram_quantile(0.5, sum by (cluster, le)"
                    " (rate(ess_sink_batch_duration_seconds_bucket[5m])))",
                    "p50 {{cluster}}",
                ),
                _q(
                    "histogram_quantile(0.99, sum by (cluster, le)"
                    " (rate(ess_sink_batch_duration_seconds_bucket[5m])))",
                    "p99 {{cluster}}",
                ),
            ),
            core=True,
        ),
        PanelSpec(
            "Dead-lettered messages by reason",
            "short",
            (
                _q(
                    "sum by (cluster, reason) (increase(ess_sink_dlq_messages_total[10m]))",
                    "{{cluster}} {{reason}}",
                ),
            ),
        ),
        PanelSpec(
            "Database errors and paused partitions",
            "short",
            (
                _q(
                    "sum by (cluster, kind) (increase(ess_sink_db_errors_total[10m]))",
                    "errors {{cluster}} {{kind}}",
                ),
                _q("sum by (cluster) (ess_sink_paused_partitions)", "paused {{cluster}}"),
            ),
        ),
    ),
)

CACHE = DashboardSpec(
    "ess-cache",
    "ESS cache",
    (
        PanelSpec(
            "Readings applied per second",
            "reqps",
            (
                _q("sum by (table) (rate(ess_cache_readings_applied_total[1m]))", "{{table}}"),
                _q("sum (rate(ess_cache_duplicates_ignored_total[1m]))", "duplicates"),
            ),
        ),
        PanelSpec(
            "Freshness: slot to apply p99",
            "s",
            (
                _q(
                    "histogram_quantile(0.99, sum by (le)"
                    " (rate(ess_cache_freshness_seconds_bucket[5m])))",
                    "p99",
                ),
            ),
        ),
        PanelSpec(
            "Redis latency p99",
            "s",
            (
                _q(
                    "histogram_quantile(0.99, sum by (op, le)"
                    " (rate(ess_cache_redis_duration_seconds_bucket[5m])))",
                    "{{op}}",
                ),
            ),
        ),
        PanelSpec(
            "Anomalies raised",
            "short",
            (_q("sum by (rule) (increase(ess_cache_anomalies_raised_total[15m]))", "{{rule}}"),),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, LOSS, KAFKA_LAG, COLLECTOR, SINK, CACHE)


def _panel(spec: PanelSpec) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(spec.title)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
    )
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(
            prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
        )
    if spec.thresholds:
        steps = [Threshold(value=None, color="green")]
        steps += [Threshold(value=value, color=color) for value, color in spec.thresholds]
        panel = panel.thresholds(
            db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
        ).thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
    return panel


def build(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a plain dict)."""
    board = (
        db.Dashboard(spec.title)
        .uid(spec.uid)
        .tags(["ess"])
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    for panel in spec.panels:
        board = board.with_panel(_panel(panel))
    model: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return model


def render(spec: DashboardSpec) -> str:
    return json.dumps(build(spec), indent=2, sort_keys=True) + "\n"
