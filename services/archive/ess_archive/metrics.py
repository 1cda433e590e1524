"""Prometheus metrics of the archive, on an injected registry. Labels: table (4), kind, outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ArchiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows_archived = Counter(
            "ess_archive_rows_archived_total",
            "Readings made durable in the archive (listed in a manifest)",
            ("table",),
            registry=registry,
        )
        self.duplicates = Counter(
            "ess_archive_duplicates_skipped_total",
            "Readings whose slot was already archived (replays, re-reads after a crash)",
            ("table",),
            registry=registry,
        )
        self.skipped = Counter(
            "ess_archive_messages_skipped_total",
            "Messages not archived: undecodable or slot out of bounds (the sinks dead-letter them)",
            ("reason",),
            registry=registry,
        )
        self.segments = Counter(
            "ess_archive_segments_written_total",
            "Staging segments written",
            ("table",),
            registry=registry,
        )
        self.rollups = Counter(
            "ess_archive_rollups_total",
            "Roll-ups of a day's segments into parts, by outcome (done, conflict, failed)",
            ("table", "outcome"),
            registry=registry,
        )
        self.bytes_written = Counter(
            "ess_archive_bytes_written_total",
            "Parquet bytes written (segments and parts)",
            ("table", "kind"),
            registry=registry,
        )
        self.store_errors = Counter(
            "ess_archive_store_errors_total",
            "Failed object-store operations (unavailable, conflict, refused)",
            ("kind",),
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "ess_archive_flush_duration_seconds",
            "Segments + manifests + offset commit of one flush (retries included)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.staged_rows = Gauge(
            "ess_archive_staged_rows", "Readings in memory, not yet durable", registry=registry
        )
        self.holding = Gauge(
            "ess_archive_holding",
            "1 while the object store is unavailable and the consumer holds (nothing committed)",
            registry=registry,
        )
        self.last_commit = Gauge(
            "ess_archive_last_commit_timestamp_seconds",
            "Unix time of the last offset commit",
            registry=registry,
        )
