"""What essctl's batch commands count, pushed to a Prometheus Pushgateway.

A command ends before Prometheus could scrape it, so its counts go to the
Pushgateway at `ESS_PUSHGATEWAY_URL` (the local stack sets it), grouped by job,
topic prefix and cluster, and Prometheus scrapes them from there. Totals add up
across runs: this run's counts are added to the totals the gateway holds (two
runs for the same cluster finishing at the same instant could lose one's
addition; the last-run gauges are exact). No URL: nothing is pushed. A gateway
that does not answer costs one warning line; the command's result stands.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

DLQ_JOB = "essctl_dlq_replay"
REDRIVE_OUTCOMES = ("inserted", "present", "still_failing")
TOTAL = "ess_ctl_dlq_redriven_messages"


def _group(prefix: str, cluster: str) -> dict[str, str]:
    return {"prefix": prefix, "cluster": cluster}


def _held_totals(url: str, group: Mapping[str, str]) -> dict[str, float]:
    """The totals the gateway holds for this job and group, per outcome."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:  # noqa: S310 (a setting)
        text = resp.read().decode()
    held: dict[str, float] = {}
    wanted = {"job": DLQ_JOB, **group}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == f"{TOTAL}_total" and all(s.labels.get(k) == v for k, v in wanted.items()):
                held[s.labels["outcome"]] = s.value
    return held


class _RedriveRun(Collector):
    """One run's samples as fixed families (plain counters would add `_created` series)."""

    def __init__(self, totals: Mapping[str, float], last: Mapping[str, int]) -> None:
        self.totals, self.last, self.at = totals, last, time.time()

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            TOTAL,
            "DLQ messages essctl dlq replay re-drove, by outcome, over all runs",
            labels=("outcome",),
        )
        last = GaugeMetricFamily(
            "ess_ctl_dlq_redrive_last_run_messages",
            "DLQ messages of the last essctl dlq replay run, by outcome",
            labels=("outcome",),
        )
        for outcome in REDRIVE_OUTCOMES:
            total.add_metric((outcome,), self.totals[outcome])
            last.add_metric((outcome,), self.last.get(outcome, 0))
        yield total
        yield last
        yield GaugeMetricFamily(
            "ess_ctl_dlq_redrive_last_run_timestamp_seconds",
            "Unix time the last essctl dlq replay run ended",
            value=self.at,
        )


def push_redrive(url: str, prefix: str, cluster: str, counts: Mapping[str, int]) -> str | None:
    """Push one `essctl dlq replay` run; None, or why it could not be pushed."""
    group = _group(prefix, cluster)
    try:
        held = _held_totals(url, group)
        totals = {o: held.get(o, 0.0) + counts.get(o, 0) for o in REDRIVE_OUTCOMES}
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_RedriveRun(totals, counts))
        push_to_gateway(url, job=DLQ_JOB, registry=registry, grouping_key=group, timeout=5)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return f"counts not pushed to {url}: {exc}"
    return None
