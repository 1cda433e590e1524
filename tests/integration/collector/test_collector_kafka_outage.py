"""Kafka stopped for 30 s in the middle of a run: readings wait in the spool, and
once Kafka is back every slot that was read is in Kafka exactly once.

Uses a private broker (tests/disposable.py): the shared stack is never stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.collector import (
    collector_settings,
    inventory_for,
    published,
    read_telemetry,
    run_collector,
    simulated_sites,
    slots_in_kafka,
    wait_until,
)
from helpers.common import unique
from helpers.disposable import DisposableKafka, disposable_kafka

OUTAGE_S = 30
pytestmark = pytest.mark.timeout(360)


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[tuple[DisposableKafka, str]]:
    prefix = unique("outage").replace("_", "-")
    with disposable_kafka(tmp_path / "kafka", prefix) as kafka:
        yield kafka, prefix


async def test_kafka_outage_loses_and_duplicates_nothing(
    private_kafka: tuple[DisposableKafka, str], tmp_path: Path
) -> None:
    kafka, prefix = private_kafka
    async with simulated_sites("site1") as simulator:
        config = collector_settings(kafka.bootstrap, prefix, tmp_path / "spool")
        async with run_collector(config, inventory_for(simulator)) as (service, collected):
            await wait_until(lambda: published(service) > 40, 30, "readings flowing to Kafka")
            await asyncio.to_thread(kafka.stop)
            read_before_outage = len(collected.readings)
            await asyncio.sleep(OUTAGE_S)
            held = service.spool.depth
            assert held >= 11 * (OUTAGE_S - 2), "readings of the outage wait in the spool"
            assert len(collected.readings) - read_before_outage >= 11 * (OUTAGE_S - 1)
            await asyncio.to_thread(kafka.start)
            await wait_until(lambda: service.spool.depth == 0, 120, "the spool to drain")
        assert service.spool.depth == 0
        assert published(service) == len(collected.readings)

    read = Counter((r.device.key, int(r.ts.timestamp())) for r in collected.readings)
    assert max(read.values()) == 1
    messages = await read_telemetry(kafka.bootstrap, prefix, len(read))
    in_kafka = Counter((r.device.key, int(r.ts.timestamp())) for _, r in messages)
    duplicated = sorted(k for k, n in in_kafka.items() if n > 1)
    assert duplicated == [], f"{len(duplicated)} slots twice in Kafka, e.g. {duplicated[:3]}"
    assert set(in_kafka) == set(read), (
        f"missing {len(set(read) - set(in_kafka))}, unexpected {len(set(in_kafka) - set(read))}"
    )
    for device, slots in slots_in_kafka(messages).items():
        assert slots == list(range(slots[0], slots[-1] + 1)), f"{device}: a gap in its slots"
