"""Collector replicas share the fleet through Kafka's group protocol.

Two or three `python -m ess_collector` processes with ESS_COLLECTOR_ASSIGNMENT=group
poll one simulator process against the real local Kafka. Checked from what
reached Kafka: while the group is stable every device has every slot once
(each site polled by exactly one replica); after the replica with the most
sites is killed with SIGKILL its sites are taken over within the session
timeout, and the slots in between are what the loss math counts as source
loss; when it comes back the group shares again and every slot is there.
Slots written twice around a hand-over are counted (harmless: the sinks keep
the first).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ess_common.settings import CommonSettings
from ess_loss.lossmath import device_loss
from helpers.collector import (
    CollectorProcess,
    read_telemetry,
    simulator_process,
    write_inventory,
)
from helpers.disposable import free_port

pytestmark = pytest.mark.timeout(240)
log = logging.getLogger(__name__)

SESSION_TIMEOUT_S = 6
SITES = 12
FLEET = {
    "seed": 7,
    "serving": "fast",
    "battery": {"modules_per_rack": 2},
    "sites": [{"id": f"r{i}", "banks": {"bank1": 2}} for i in range(SITES)],
}  # 5 devices a site: bank, 2 racks, PCS, meter


def _owned(collectors: Sequence[CollectorProcess]) -> list[float | None]:
    return [c.metric("ess_collector_sites_owned") for c in collectors]


async def _until(collectors: Sequence[CollectorProcess], ok: object, timeout_s: float) -> float:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        owned = _owned(collectors)
        if callable(ok) and ok(owned):
            return time.time()
        await asyncio.sleep(0.25)
    raise AssertionError(f"sites owned {owned} after {timeout_s}s")


def _shared(owned: list[float | None]) -> bool:
    return all(n is not None for n in owned) and sum(n or 0 for n in owned) == SITES


def _slots(window: tuple[int, int]) -> set[int]:
    return set(range(window[0], window[1] + 1))


@pytest.mark.parametrize("replicas", [2, 3])
async def test_replicas_share_the_fleet_and_take_over_a_killed_one(
    replicas: int, settings: CommonSettings, telemetry_prefix: str, tmp_path: Path
) -> None:
    with simulator_process(FLEET, tmp_path) as inventory:
        path = write_inventory(inventory, tmp_path / "inventory.yaml")
        devices = {d.id for d in inventory.devices()}
        collectors = [
            CollectorProcess(
                {
                    **os.environ,
                    "ESS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                    "ESS_TOPIC_PREFIX": telemetry_prefix,
                    "ESS_COLLECTOR_INVENTORY": str(path),
                    "ESS_COLLECTOR_SPOOL_DIR": str(tmp_path / f"spool-{i}"),
                    "ESS_HTTP_PORT": str(free_port()),
                    "ESS_COLLECTOR_ASSIGNMENT": "group",
                    "ESS_COLLECTOR_GROUP_ID": f"{telemetry_prefix}-collectors",
                    "ESS_COLLECTOR_GROUP_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
                    "ESS_DRAIN_TIMEOUT_S": "15",
                    "ESS_LOG_LEVEL": "INFO",
                },
                tmp_path / f"collector-{i}.log",
            )
            for i in range(replicas)
        ]
        try:
            for collector in collectors:
                collector.start()
            # every replica in the group, holding a share, the shares covering the fleet
            await _until(collectors, lambda o: _shared(o) and all(o), 60)
            await asyncio.sleep(3)
            stable_from = int(time.time()) + 1
            await asyncio.sleep(12)
            victim = max(collectors, key=lambda c: c.metric("ess_collector_sites_owned") or 0)
            survivors = [c for c in collectors if c is not victim]
            killed_at = time.time()
            victim.kill()
            taken_over = await _until(survivors, _shared, SESSION_TIMEOUT_S + 15)
            await asyncio.sleep(8)
            victim.start()  # same spool, same group
            back = await _until(collectors, lambda o: _shared(o) and all(o), 60)
            await asyncio.sleep(12)
            end = int(time.time()) - 2
        finally:
            codes = [c.stop() for c in collectors]
            await _delete_assignment_topic(settings.kafka_bootstrap, telemetry_prefix)
    assert all(code == 0 for code in codes), codes
    assert taken_over - killed_at < SESSION_TIMEOUT_S + 6, "the survivors took over too late"

    messages = await read_telemetry(settings.kafka_bootstrap, telemetry_prefix, len(devices) * 40)
    seen: dict[str, Counter[int]] = {d: Counter() for d in devices}
    for key, reading in messages:
        seen[key.decode()][int(reading.ts.timestamp())] += 1
    kill_slot = int(killed_at)
    stable = (stable_from, kill_slot - 1)
    after_return = (int(back) + 3, end)
    duplicates = sum(n - 1 for counts in seen.values() for n in counts.values() if n > 1)
    log.info("%d replicas: %d slots written twice around hand-overs", replicas, duplicates)
    for device, counts in seen.items():
        for window in (stable, after_return):
            slots = _slots(window)
            assert slots <= set(counts), f"{device}: slots missing in {window}"
            twice = [s for s in slots if counts[s] > 1]
            assert not twice, f"{device}: slots {twice} polled twice while the group was stable"

    # The victim's sites miss the slots between the kill and the take-over: source loss.
    window = (kill_slot - 1, int(taken_over) + 3)
    length = window[1] - window[0] + 1
    lost: dict[str, int] = {}
    for device, counts in seen.items():
        bits = sum(1 << (s - window[0]) for s in counts if window[0] <= s <= window[1])
        loss = device_loss(device, device.split("/")[0], length, bits, {"local": bits})
        lost[device] = loss.counts["local"].source_loss
        missing = _slots((window[1] + 1, end)) - set(counts)
        assert not missing, f"{device}: slots {sorted(missing)} missing after the take-over"
    victims = {d for d, n in lost.items() if n}
    assert victims, "the killed replica's sites lost no slot?"
    assert max(lost.values()) <= SESSION_TIMEOUT_S + 6
    assert {d.split("/")[0] for d in victims} < {d.split("/")[0] for d in devices}


async def _delete_assignment_topic(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([f"{prefix}.collector.assignment"])
    except KafkaError:  # a replica that never started leaves none
        log.info("no assignment topic to delete")
    finally:
        await admin.close()
