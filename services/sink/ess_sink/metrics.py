"""Prometheus metrics of the sink and its replay worker, registered on an injected registry.

Labels are bounded: cluster (2), table (4), partition (the topics' partition
count), reason (the DLQ reasons), kind (`db_errors.KINDS`), outcome (completed,
failed).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ess_common.model import Table
from ess_tables.rows import columns
from ess_tables.wire_rows import Row

# Seconds from a slot to its row being committed (or applied): 1 s is the pipeline
# keeping up, minutes are an outage being caught up, hours are a replay.
FRESHNESS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 21600, 86400)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("cluster", "table")
        self.rows_written = Counter(
            "ess_sink_rows_written_total", "Rows newly inserted", labels, registry=registry
        )
        self.duplicates = Counter(
            "ess_sink_duplicates_skipped_total",
            "Rows already present (replays, retries)",
            labels,
            registry=registry,
        )
        self.batches = Counter(
            "ess_sink_batches_total", "Batches committed", ("cluster",), registry=registry
        )
        self.batch_seconds = Histogram(
            "ess_sink_batch_duration_seconds",
            "Write + commit time of one batch",
            ("cluster",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.dlq = Counter(
            "ess_sink_dlq_messages_total",
            "Messages sent to the dead-letter topic",
            ("cluster", "reason"),
            registry=registry,
        )
        self.dlq_retries = Counter(
            "ess_sink_dlq_retries_total",
            "Dead-letter produces that failed and were tried again",
            ("cluster",),
            registry=registry,
        )
        self.revoked_batches = Counter(
            "ess_sink_revoked_batches_total",
            "Batches in flight when their partitions were revoked, by outcome"
            " (finished: committed before giving them up; abandoned: re-written by the new owner)",
            ("cluster", "outcome"),
            registry=registry,
        )
        self.commit_failures = Counter(
            "ess_sink_commit_failures_total",
            "Offset commits that failed (batch reprocessed)",
            ("cluster",),
            registry=registry,
        )
        self.db_errors = Counter(
            "ess_sink_db_errors_total",
            "Failed database operations by kind (see ess_common.db_errors)",
            ("cluster", "kind"),
            registry=registry,
        )
        self.lag = Gauge(
            "ess_sink_lag_messages",
            "Messages in the partition after the last committed offset",
            ("cluster", "table", "partition"),
            registry=registry,
        )
        self.paused_partitions = Gauge(
            "ess_sink_paused_partitions",
            "Partitions paused while the database is unavailable",
            ("cluster",),
            registry=registry,
        )
        self.last_commit = Gauge(
            "ess_sink_last_commit_timestamp_seconds",
            "Unix time of the last committed batch",
            ("cluster",),
            registry=registry,
        )
        self.freshness = Histogram(
            "ess_sink_freshness_seconds",
            "End-to-end freshness: commit time - slot time of every row committed",
            labels,
            buckets=FRESHNESS_BUCKETS,
            registry=registry,
        )

    def observe_freshness(self, cluster: str, rows: Mapping[Table, Sequence[Row]]) -> None:
        """Slot-to-commit age of each committed row (inserted or already there)."""
        now = time.time()
        for table, table_rows in rows.items():
            ts_at = columns(table).index("ts")
            histogram = self.freshness.labels(cluster, table)
            for row in table_rows:
                ts = row[ts_at] if len(row) > ts_at else None
                if isinstance(ts, datetime):  # always, but for the tests' shortened rows
                    histogram.observe(now - ts.timestamp())


class ReplayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ess_sink_replay_requests_total",
            "Replay requests for this cluster by outcome (completed, failed)",
            ("cluster", "outcome"),
            registry=registry,
        )
        self.messages = Counter(
            "ess_sink_replay_messages_read_total",
            "Kafka messages read by replays",
            ("cluster", "table"),
            registry=registry,
        )
        self.inserted = Counter(
            "ess_sink_replay_rows_inserted_total",
            "Rows a replay inserted (they were missing)",
            ("cluster", "table"),
            registry=registry,
        )
        self.present = Counter(
            "ess_sink_replay_rows_present_total",
            "Rows a replay found already present",
            ("cluster", "table"),
            registry=registry,
        )
        self.worker_up = Gauge(
            "ess_sink_replay_worker_up",
            "1 while the replay worker runs, 0 while it waits to restart after a failure",
            ("cluster",),
            registry=registry,
        )
        self.worker_failures = Counter(
            "ess_sink_replay_worker_failures_total",
            "Replay worker failures by kind (kafka, database, unexpected); each is restarted",
            ("cluster", "kind"),
            registry=registry,
        )
        self.active = Gauge(
            "ess_sink_replay_active", "1 while a replay runs", ("cluster",), registry=registry
        )
        self.progress = Gauge(
            "ess_sink_replay_progress_ratio",
            "Messages read / planned upper bound of the running replay",
            ("cluster",),
            registry=registry,
        )
        self.seconds = Histogram(
            "ess_sink_replay_duration_seconds",
            "Time to serve one replay request",
            ("cluster",),
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200),
            registry=registry,
        )
