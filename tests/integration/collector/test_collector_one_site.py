"""One site polled for a minute: exactly one message per device per second in Kafka,
none duplicated, slots contiguous, and Kafka holds exactly what was read."""

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
    slots_in_kafka,
)

RUN_S = 60
pytestmark = pytest.mark.timeout(RUN_S + 90)


async def test_one_site_for_a_minute_gives_one_message_per_device_per_second(
    settings: CommonSettings, telemetry_prefix: str, tmp_path: Path
) -> None:
    async with simulated_sites("site1") as simulator:
        inventory = inventory_for(simulator)
        devices = {d.id for d in inventory.devices()}
        assert len(devices) == 11  # bank, 8 racks, PCS, meter
        config = collector_settings(settings.kafka_bootstrap, telemetry_prefix, tmp_path)
        async with run_collector(config, inventory) as (service, collected):
            await asyncio.sleep(RUN_S + 1.5)
            health = service.health()
            assert health.ok
            assert health.detail["endpoints_connected"] == 1
            assert health.detail["kafka_ready"] is True
        assert sum(e.overruns for e in service.endpoints) == 0
        assert service.spool.depth == 0

    read = collected.slots_by_device()
    assert set(read) == devices
    messages = await read_telemetry(
        settings.kafka_bootstrap, telemetry_prefix, len(collected.readings)
    )
    in_kafka = slots_in_kafka(messages)
    assert set(in_kafka) == devices
    for device, slots in in_kafka.items():
        duplicated = [slot for slot, n in Counter(slots).items() if n > 1]
        assert duplicated == [], f"{device}: slots {duplicated} twice"
        assert slots == list(range(slots[0], slots[-1] + 1)), f"{device}: slots not contiguous"
        assert len(slots) >= RUN_S, f"{device}: only {len(slots)} slots"
        assert slots == sorted(read[device]), f"{device}: Kafka differs from what was read"
    first = max(s[0] for s in in_kafka.values())
    last = min(s[-1] for s in in_kafka.values())
    assert last - first + 1 >= RUN_S - 1  # every device in every second of the common window
    assert {r.table for _, r in messages} == {"bank", "rack", "pcs", "etc"}
