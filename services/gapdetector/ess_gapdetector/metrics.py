"""Prometheus metrics of the gap detector, on an injected registry; labels are bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GapMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.loss = Gauge(
            "ess_gapdetector_loss_ratio",
            "Loss of the last evaluated window (kind: source, sink, total, pending);"
            " site 'all' = table",
            ("cluster", "site", "table", "period", "kind"),
            registry=registry,
        )
        # (cluster, table, period, zone) -> sites with gauges, to remove those that go
        self.sites_shown: dict[tuple[str, str, str, str], set[str]] = {}
        self.waiting = Gauge(
            "ess_gapdetector_waiting",
            "1 while the detector waits for a dependency (kafka, registry, clusters)",
            ("what",),
            registry=registry,
        )
        self.seconds_since_window = Gauge(
            "ess_gapdetector_last_window_age_seconds",
            "Time since a window was last evaluated",
            registry=registry,
        )
        self.last_window = Gauge(
            "ess_gapdetector_last_window_timestamp_seconds",
            "Unix time a window was last evaluated (alert: time() - this)",
            registry=registry,
        )
        self.pending_windows = Gauge(
            "ess_gapdetector_pending_windows",
            "Windows a sink group has not passed yet (re-evaluated until final)",
            registry=registry,
        )
        self.windows = Counter(
            "ess_gapdetector_windows_evaluated_total",
            "Windows evaluated",
            ("table", "period"),
            registry=registry,
        )
        self.evaluation_seconds = Histogram(
            "ess_gapdetector_evaluation_duration_seconds",
            "Time to evaluate one window of one table on every cluster",
            ("period",),
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
            registry=registry,
        )
        self.kafka_messages = Counter(
            "ess_gapdetector_kafka_messages_total",
            "Telemetry messages read from Kafka",
            ("table",),
            registry=registry,
        )
        self.kafka_lag = Gauge(
            "ess_gapdetector_kafka_lag_messages",
            "Messages not read yet, over every telemetry partition",
            registry=registry,
        )
        self.unreadable = Counter(
            "ess_gapdetector_unreadable_messages_total",
            "Messages without a valid device key or slot (not counted as reaching Kafka)",
            ("table",),
            registry=registry,
        )
        self.replay_requests = Counter(
            "ess_gapdetector_replay_requests_total",
            "Replay requests published for sink loss",
            ("cluster", "table"),
            registry=registry,
        )
        self.pending_replays = Gauge(
            "ess_gapdetector_pending_replays",
            "Replay requests waiting for completion and verification",
            registry=registry,
        )
        self.gaps_closed = Counter(
            "ess_gapdetector_gaps_closed_total",
            "Gaps verified closed, by how (replay, sync, archive)",
            ("cluster", "table", "how"),
            registry=registry,
        )
        self.gaps_unclosed = Counter(
            "ess_gapdetector_gaps_unclosed_total",
            "Gaps still open after a replay and the sync fallback",
            ("cluster", "table"),
            registry=registry,
        )
        self.sync_rows = Counter(
            "ess_gapdetector_sync_rows_inserted_total",
            "Rows copied into a cluster from the other one",
            ("cluster", "table"),
            registry=registry,
        )
        self.archive_rows = Counter(
            "ess_gapdetector_archive_rows_inserted_total",
            "Rows restored into a cluster from the Parquet archive",
            ("cluster", "table"),
            registry=registry,
        )
        self.cluster_errors = Counter(
            "ess_gapdetector_cluster_errors_total",
            "Failed queries or connections per cluster",
            ("cluster",),
            registry=registry,
        )
