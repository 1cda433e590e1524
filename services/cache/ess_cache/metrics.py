"""Prometheus metrics of the cache, registered on an injected registry."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ess_cache.decode import CacheReading

# Slot to applied in Redis, in seconds (as the sinks' ess_sink_freshness_seconds).
FRESHNESS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 21600, 86400)


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.freshness = Histogram(
            "ess_cache_freshness_seconds",
            "Apply time - slot time of every reading applied (and committed)",
            ("table",),
            buckets=FRESHNESS_BUCKETS,
            registry=registry,
        )
        self.applied = Counter(
            "ess_cache_readings_applied_total",
            "Readings counted into the aggregates for the first time",
            ("table",),
            registry=registry,
        )
        self.duplicates = Counter(
            "ess_cache_duplicates_ignored_total",
            "Readings whose slot was already counted (replays, redeliveries, rebuilt from SQL)",
            ("table",),
            registry=registry,
        )
        self.too_old = Counter(
            "ess_cache_readings_too_old_total",
            "Readings for a day no longer open in the cache (ignored)",
            ("table",),
            registry=registry,
        )
        self.out_of_bounds = Counter(
            "ess_cache_readings_out_of_bounds_total",
            "Readings outside the sinks' slot bounds (too far ahead or too old; ignored)",
            ("table",),
            registry=registry,
        )
        self.undecodable = Counter(
            "ess_cache_undecodable_messages_total",
            "Messages that are not valid readings (the sinks dead-letter them)",
            ("reason",),
            registry=registry,
        )
        self.anomalies = Counter(
            "ess_cache_anomalies_raised_total",
            "Entries added to the anomaly feeds",
            ("rule",),
            registry=registry,
        )
        self.redis_seconds = Histogram(
            "ess_cache_redis_duration_seconds",
            "Latency of Redis round trips",
            ("op",),
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.redis_errors = Counter(
            "ess_cache_redis_errors_total",
            "Redis calls that failed because Redis was unreachable (retried)",
            ("op",),
            registry=registry,
        )
        self.redis_up = Gauge(
            "ess_cache_redis_up", "1 when the last Redis call succeeded", registry=registry
        )
        self.rebuilds = Counter(
            "ess_cache_rebuilds_total",
            "Rebuilds of the open days from TimescaleDB",
            ("reason",),
            registry=registry,
        )
        self.rebuild_seconds = Histogram(
            "ess_cache_rebuild_duration_seconds",
            "Duration of rebuilds done by this instance",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=registry,
        )
        self.batches = Counter(
            "ess_cache_batches_total", "Batches applied and committed", registry=registry
        )
        self.commit_failures = Counter(
            "ess_cache_commit_failures_total",
            "Offset commits that failed (the batch is re-read; dedupe absorbs it)",
            registry=registry,
        )

    def observe_freshness(self, readings: Iterable[CacheReading]) -> None:
        now = time.time()
        for reading in readings:
            self.freshness.labels(reading.device.table).observe(now - reading.slot)
