"""One device muted: the others keep every slot; the muted one is asked again only
as its backoff allows, its missing slots stay missing, and it comes back."""

from __future__ import annotations

import asyncio
import time
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
    wait_until,
)

MUTED = "site1/bank1/rack3"
MUTE_S = 30
pytestmark = pytest.mark.timeout(150)


async def test_a_muted_device_costs_only_its_own_slots(
    settings: CommonSettings, telemetry_prefix: str, tmp_path: Path
) -> None:
    async with simulated_sites("site1") as simulator:
        config = collector_settings(
            settings.kafka_bootstrap,
            telemetry_prefix,
            tmp_path,
            collector_backoff_initial_s=1.0,
            collector_backoff_max_s=8.0,
        )
        async with run_collector(config, inventory_for(simulator)) as (service, collected):
            muted = next(d for d in service.devices() if d.key == MUTED)
            await wait_until(
                lambda: len(collected.slots_by_device().get(MUTED, [])) >= 3, 20, "a few readings"
            )
            simulator.set_fault(MUTED, {"mute": True})
            muted_from = time.time()
            await asyncio.sleep(MUTE_S)
            simulator.clear_fault(MUTED)
            unmuted_at = time.time()
            probes_while_muted = muted.probes
            await wait_until(
                lambda: max(collected.slots_by_device()[MUTED]) > unmuted_at,
                15,
                "the device to return",
            )
            await asyncio.sleep(2)
        overruns = sum(e.overruns for e in service.endpoints)
        connects = service.registry.get_sample_value(
            "ess_collector_connect_attempts_total", {"site": "site1", "outcome": "ok"}
        )

    # Without backoff a muted device would be asked 30 times; with 1 s doubling to 8 s
    # (jittered to at least half) at most 1 + (0.5 + 1 + 2 + 4 * 6 >= 27.5 s) = 9 times.
    assert 2 <= probes_while_muted <= 10
    assert overruns == 0
    assert connects == 1  # the gateway connection was never dropped for it

    messages = await read_telemetry(
        settings.kafka_bootstrap, telemetry_prefix, len(collected.readings)
    )
    in_kafka = slots_in_kafka(messages)
    assert max(Counter((r.device.key, r.ts) for _, r in messages).values()) == 1
    for device, slots in in_kafka.items():
        if device == MUTED:
            continue
        assert slots == list(range(slots[0], slots[-1] + 1)), f"{device} lost a slot"
    silent = [s for s in in_kafka[MUTED] if muted_from + 1 < s < unmuted_at]
    assert silent == [], "no reading invented while the device was mute"
    assert any(s <= muted_from for s in in_kafka[MUTED])
    assert any(s > unmuted_at for s in in_kafka[MUTED])
    assert sorted(collected.slots_by_device()[MUTED]) == in_kafka[MUTED]
