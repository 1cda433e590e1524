"""The object store down for two minutes under a running archive: it holds its readings,
commits no offset while the store is away, reports itself on /healthz, and catches up.

The store is a disposable MinIO of this test (the shared stack's is never stopped). The
outage lasts `ESS_TEST_ARCHIVE_OUTAGE_S` (120 s by default, as in the issue): long
enough for several capped retries and for the liveness bound (30 s here) to pass.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from ess_archive.bootstrap import bootstrap as archive_bootstrap
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import group_committed
from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, scaled_fleet
from ess_common.topics import telemetry_topic
from helpers.archive import archive_settings, archived_keys, store_of
from helpers.common import unique
from helpers.disposable import disposable_minio
from helpers.sink import counter_total
from helpers.sinkdata import messages, produce, recent_slot

OUTAGE_S = float(os.environ.get("ESS_TEST_ARCHIVE_OUTAGE_S", "120"))
FLEET = scaled_fleet(100)


async def _committed(
    admin: AIOKafkaAdminClient, group: str, prefix: str
) -> dict[str, dict[int, int]]:
    return {t: await group_committed(admin, group, telemetry_topic(t, prefix)) for t in TABLES}


async def test_archive_holds_through_a_store_outage_and_catches_up(
    settings: CommonSettings,
    telemetry_prefix: str,
    kafka_admin: AIOKafkaAdminClient,
    tmp_path: Path,
) -> None:
    before = messages(readings(FLEET, recent_slot(2), 30), telemetry_prefix)
    during = messages(readings(FLEET, recent_slot(1), 60), telemetry_prefix)
    group = unique("g-archive")
    with disposable_minio(tmp_path) as minio:
        store = store_of(minio.env_lines())
        config = archive_settings(
            settings,
            store,
            telemetry_prefix,
            group,
            archive_retry_max_s=10.0,
            archive_stall_s=min(30.0, OUTAGE_S / 2),
        )
        service = archive_bootstrap(config, CollectorRegistry())
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            async with ReadingProducer(settings.kafka_bootstrap, telemetry_prefix) as producer:
                await produce(producer, before)
                await _wait(lambda: counter_total(service, "rows_archived") >= len(before), 60)
                minio.stop()
                down_at = time.monotonic()
                await produce(producer, during)
                await _wait(lambda: service.holding_since is not None, 60)
                held_offsets = await _committed(kafka_admin, group, telemetry_prefix)
                unhealthy = False
                while time.monotonic() - down_at < OUTAGE_S:
                    assert not task.done(), "the archive exited during the outage"
                    assert service.stager.count > 0  # holding what it read
                    unhealthy = unhealthy or not service.health().ok
                    await asyncio.sleep(2)
                assert await _committed(kafka_admin, group, telemetry_prefix) == held_offsets
                assert counter_total(service, "rows_archived") == len(before)
                assert unhealthy, "/healthz stayed ok through the outage"
                assert service.health().detail["object_store"] == "down"
                minio.start()
                total = len(before) + len(during)
                await _wait(lambda: counter_total(service, "rows_archived") >= total, 90)
                await _wait(lambda: service.holding_since is None, 30)
                assert service.health().ok
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert counter_total(service, "rows_archived") == total
        assert await archived_keys(store) == (total, total)
        ends = await _committed(kafka_admin, group, telemetry_prefix)
        assert sum(sum(p.values()) for p in ends.values()) == total  # committed to the end


async def _wait(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout_s}s"
        await asyncio.sleep(0.2)
