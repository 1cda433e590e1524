"""Running sinks in-process for tests, against real Kafka and real databases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_common.settings import CommonSettings
from ess_sink.service import SinkService
from ess_sink.settings import Cluster, SinkSettings


def sink_settings(
    base: CommonSettings, cluster: Cluster, dsn: str, prefix: str, group: str, **extra: object
) -> SinkSettings:
    dsn_field = "db_local_dsn" if cluster == "local" else "db_cloud_dsn"
    return SinkSettings.model_validate(
        {
            "kafka_bootstrap": base.kafka_bootstrap,
            dsn_field: SecretStr(dsn),
            "topic_prefix": prefix,
            "sink_cluster": cluster,
            "sink_group_id": group,
            "sink_batch_max_wait_s": 0.2,
            **extra,
        }
    )


async def run_sink_until(
    settings: SinkSettings, done: Callable[[SinkService], Awaitable[bool]], timeout_s: float = 60.0
) -> SinkService:
    """Run a sink until `done()` is true (checked every 0.2 s), then stop it cleanly."""
    service = SinkService(settings, CollectorRegistry())
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while not await done(service):
            if task.done():
                task.result()  # surface the sink's own error
                raise AssertionError("sink stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"sink did not finish within {timeout_s}s")
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return service


def counter_total(service: SinkService, counter_name: str) -> float:
    """Sum of one of the sink's counters over all its label sets."""
    counter = getattr(service.metrics, counter_name)
    return sum(
        float(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
