"""While Kafka is unreachable the spool holds readings up to its bound, drops the
oldest beyond it and counts every one; what it held survives a collector
restart and reaches Kafka once, in order, when the next collector finds it."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from ess_common.settings import CommonSettings
from helpers.collector import (
    collector_settings,
    inventory_for,
    read_telemetry,
    run_collector,
    simulated_sites,
    wait_until,
)
from helpers.disposable import free_port

pytestmark = pytest.mark.timeout(120)
SPOOL_BYTES = 64 << 10  # a few seconds of the vendor site's readings
SEGMENT_BYTES = 16 << 10


async def test_a_full_spool_drops_the_oldest_and_the_rest_survives_a_restart(
    settings: CommonSettings, telemetry_prefix: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    bounded = {
        "collector_spool_max_bytes": SPOOL_BYTES,
        "collector_spool_segment_bytes": SEGMENT_BYTES,
    }
    async with simulated_sites("site4") as simulator:  # the vendor register-map site
        inventory = inventory_for(simulator)
        nowhere = f"127.0.0.1:{free_port()}"  # no Kafka listens here
        first = collector_settings(nowhere, telemetry_prefix, spool, drain_timeout_s=2, **bounded)
        async with run_collector(first, inventory) as (service, before):
            await wait_until(lambda: service.spool.dropped > 0, 40, "the spool to overflow")
            await asyncio.sleep(1)
        dropped = service.spool.dropped
        dropped_metric = service.registry.get_sample_value("ess_collector_spool_dropped_total")
        assert dropped_metric == dropped
        assert service.spool.size_bytes <= SPOOL_BYTES
        assert service.spool.depth == len(before.readings) - dropped

        # Restarted with room to spare, so nothing more is dropped while Kafka connects.
        second = collector_settings(settings.kafka_bootstrap, telemetry_prefix, spool)
        async with run_collector(second, inventory) as (service, after):
            assert service.spool.depth == len(before.readings) - dropped
            await wait_until(lambda: len(after.readings) >= 12 * 3, 20, "new readings")
            await wait_until(lambda: service.spool.depth == 0, 30, "the spool to drain")
        assert service.spool.dropped == 0

    kept = before.readings[dropped:]  # the oldest readings were the ones dropped
    expected = [(r.device.key, r.ts) for r in kept + after.readings]
    messages = await read_telemetry(settings.kafka_bootstrap, telemetry_prefix, len(expected))
    in_kafka = Counter((r.device.key, r.ts) for _, r in messages)
    assert max(in_kafka.values()) == 1
    assert set(in_kafka) == set(expected)
    assert {r.device.table for r in kept} == {"bank", "rack", "pcs", "etc"}
