"""Prometheus metrics of the collector, registered on an injected registry.

Labels are bounded by the inventory: `site`, `table`, `reason` (a fixed set of
codes), and `device` only on the per-device up/down gauge.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter(
            "ess_collector_polls_total",
            "Device polls by outcome (ok, partial, failed)",
            ("site", "table", "outcome"),
            registry=registry,
        )
        self.poll_failures = Counter(
            "ess_collector_poll_failures_total",
            "Failed Modbus requests and discoveries, by reason",
            ("site", "reason"),
            registry=registry,
        )
        self.poll_seconds = Histogram(
            "ess_collector_poll_duration_seconds",
            "Time to poll one device (all its requests)",
            ("table",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.slot_lateness = Histogram(
            "ess_collector_slot_lateness_seconds",
            "How long after its slot's boundary a reading was taken",
            ("table",),
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.overruns = Counter(
            "ess_collector_overruns_total",
            "Slots skipped because the endpoint's previous poll was still running",
            ("site",),
            registry=registry,
        )
        self.clock_steps = Counter(
            "ess_collector_clock_steps_total",
            "Wall-clock steps back beyond the schedule's wait, followed by the pollers",
            ("site",),
            registry=registry,
        )
        self.readings = Counter(
            "ess_collector_readings_total",
            "Readings taken and spooled",
            ("site", "table"),
            registry=registry,
        )
        self.readings_published = Counter(
            "ess_collector_readings_published_total",
            "Readings Kafka acknowledged",
            ("table",),
            registry=registry,
        )
        self.publish_errors = Counter(
            "ess_collector_publish_errors_total",
            "Failed sends to Kafka (retried from the spool), by error",
            ("error",),
            registry=registry,
        )
        self.spool_depth = Gauge(
            "ess_collector_spool_depth",
            "Readings in the spool not yet acknowledged by Kafka",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "ess_collector_spool_bytes", "Bytes of the spool's segment files", registry=registry
        )
        self.spool_max_bytes = Gauge(
            "ess_collector_spool_max_bytes",
            "The spool's bound (drop-oldest beyond it)",
            registry=registry,
        )
        self.spool_oldest_age = Gauge(
            "ess_collector_spool_oldest_age_seconds",
            "Now - slot of the oldest reading in the spool not acknowledged by Kafka (0 = empty)",
            registry=registry,
        )
        self.spool_dropped = Counter(
            "ess_collector_spool_dropped_total",
            "Readings dropped because the spool was full (drop-oldest policy)",
            registry=registry,
        )
        self.spool_corrupt = Counter(
            "ess_collector_spool_corrupt_total",
            "Damaged spool records skipped (CRC or framing), the rest kept",
            registry=registry,
        )
        self.device_up = Gauge(
            "ess_collector_device_up",
            "1 if the device's last poll produced a reading",
            ("site", "device"),
            registry=registry,
        )
        self.endpoint_connected = Gauge(
            "ess_collector_endpoint_connected",
            "Connected Modbus endpoints",
            ("site",),
            registry=registry,
        )
        self.connects = Counter(
            "ess_collector_connect_attempts_total",
            "TCP connection attempts to Modbus endpoints, by outcome",
            ("site", "outcome"),
            registry=registry,
        )
        self.probes = Counter(
            "ess_collector_device_probes_total",
            "Polls of devices that were down (spaced by backoff)",
            ("site",),
            registry=registry,
        )
        self.discoveries = Counter(
            "ess_collector_discoveries_total",
            "SunSpec model-chain walks, by outcome",
            ("site", "outcome"),
            registry=registry,
        )
        self.sites_owned = Gauge(
            "ess_collector_sites_owned",
            "Sites this replica polls now (its share of the fleet)",
            registry=registry,
        )
        self.inventory_sites = Gauge(
            "ess_collector_inventory_sites",
            "Sites in this replica's inventory (the whole fleet the replicas share)",
            registry=registry,
        )
        self.assignments = Counter(
            "ess_collector_assignments_total",
            "Site assignments applied (start, rebalances of the replicas' group)",
            registry=registry,
        )
