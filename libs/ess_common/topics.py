"""Kafka topic names: one telemetry topic per table, a control topic and a DLQ."""

from __future__ import annotations

from ess_common.model import TABLES, Table


def telemetry_topic(table: Table, prefix: str = "ess") -> str:
    return f"{prefix}.telemetry.{table}"


def replay_topic(prefix: str = "ess") -> str:
    return f"{prefix}.control.replay"


def dlq_topic(prefix: str = "ess") -> str:
    return f"{prefix}.telemetry.dlq"


def all_topics(prefix: str = "ess") -> list[str]:
    return [telemetry_topic(t, prefix) for t in TABLES] + [replay_topic(prefix), dlq_topic(prefix)]


def table_of_topic(topic: str, prefix: str = "ess") -> Table:
    for table in TABLES:
        if topic == telemetry_topic(table, prefix):
            return table
    raise ValueError(f"{topic!r} is not a telemetry topic under prefix {prefix!r}")


def registry_topic(prefix: str = "ess") -> str:
    """The fleet registry's records (compacted, keyed by device or site)."""
    return f"{prefix}.fleet.registry"
