"""The collector's loop, wired by `bootstrap` with in-memory Modbus and Kafka fakes.

What it pins: every reading polled goes through the spool to Kafka, in poll
order, keyed by device and on the table's topic; on stop polling ends first
and the spool is drained to Kafka before `run` returns; a site the assignment
takes away stops (its connection closed) and comes back, never a slot twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ess_collector.bootstrap import bootstrap
from ess_collector.inventory import (
    DeviceConfig,
    EndpointConfig,
    Inventory,
    MapPoint,
    RegisterMap,
    SiteConfig,
)
from ess_collector.planning import Space
from ess_collector.settings import CollectorSettings
from ess_common.codec import decode_reading
from ess_common.model import Reading
from ess_common.topics import telemetry_topic
from helpers.collector_fakes import FakeModbus

RACK_MAP = RegisterMap(
    table="rack",
    points=[
        MapPoint(
            name="SoC", field="soc_pct", space=Space.INPUT, address=0, type="uint16", scale=0.1
        ),
    ],
)
INVENTORY = Inventory(
    register_maps={"rack": RACK_MAP},
    sites=[
        SiteConfig(
            id="site1",
            endpoints=[
                EndpointConfig(
                    host="gateway.invalid",
                    devices=[
                        DeviceConfig(id="site1/bank1/rack1", unit=1, register_map="rack"),
                        DeviceConfig(id="site1/bank1/rack2", unit=2, register_map="rack"),
                    ],
                )
            ],
        )
    ],
)


def _settings(spool: Path) -> CollectorSettings:
    return CollectorSettings(
        _env_file=None,
        topic_prefix="unit",
        collector_spool_dir=spool,
        collector_spool_max_bytes=1 << 20,
        collector_spool_segment_bytes=64 << 10,
        collector_request_timeout_s=0.2,
        drain_timeout_s=5,
    )


class FakeKafka:
    """Acknowledges each record a little later (a broker's round trip); keeps what it got."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(1.2, ack.set_result, None)
        return ack


async def test_the_collector_publishes_what_it_polled_and_drains_the_spool_on_stop(
    tmp_path: Path,
) -> None:
    polled: list[Reading] = []
    kafka = FakeKafka()
    service = bootstrap(
        _settings(tmp_path),
        CollectorRegistry(),
        inventory=INVENTORY,
        observers=[polled.append],
        connection=FakeModbus,
        producer=kafka,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    async with asyncio.timeout(10):
        while len(polled) < 4:  # two slots of both racks
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
    stop.set()  # the last readings are still unacknowledged here
    await asyncio.wait_for(task, 10)

    assert [(t, k) for t, k, _ in kafka.sent] == [
        (telemetry_topic("rack", "unit"), r.device.key.encode()) for r in polled
    ]
    assert [decode_reading(v, k) for _, k, v in kafka.sent] == polled
    assert {r.device.key: r.values.model_dump()["soc_pct"] for r in polled} == {
        "site1/bank1/rack1": 50.1,
        "site1/bank1/rack2": 50.2,
    }
    assert service.spool.depth == 0  # every reading acknowledged before run returned
    assert not kafka.running
    assert all(e.client.is_connected() is False for e in service.endpoints)


class ScriptedAssignment:
    """Hands the service all sites, takes site1 away for a while, gives it back."""

    def __init__(self, readings: list[Reading], closed: Callable[[str], bool]) -> None:
        self.readings = readings
        self.closed = closed  # site -> its endpoints' connections are closed
        self.site1_closed_while_away = False

    def _count(self, site: str) -> int:
        return sum(1 for r in self.readings if r.device.site == site)

    async def run(self, apply: Callable[[frozenset[str]], None], stop: asyncio.Event) -> None:
        apply(frozenset({"site1", "site2"}))
        while self._count("site1") < 2:  # noqa: ASYNC110 - a list the service fills
            await asyncio.sleep(0.05)
        apply(frozenset({"site2"}))
        await asyncio.sleep(2.5)
        self.site1_closed_while_away = self.closed("site1")
        apply(frozenset({"site1", "site2"}))
        await stop.wait()


async def test_sites_handed_away_stop_and_come_back_without_a_slot_twice(tmp_path: Path) -> None:
    two_sites = Inventory(
        register_maps={"rack": RACK_MAP},
        sites=[
            SiteConfig(
                id=site,
                endpoints=[
                    EndpointConfig(
                        host=f"{site}.invalid",
                        devices=[
                            DeviceConfig(id=f"{site}/bank1/rack1", unit=1, register_map="rack")
                        ],
                    )
                ],
            )
            for site in ("site1", "site2")
        ],
    )
    polled: list[Reading] = []
    service = bootstrap(
        _settings(tmp_path),
        CollectorRegistry(),
        inventory=two_sites,
        observers=[polled.append],
        connection=FakeModbus,
        producer=FakeKafka(),
    )
    script = ScriptedAssignment(
        polled,
        lambda site: all(not e.client.is_connected() for e in service.endpoints if e.site == site),
    )
    service.assignment = script
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    async with asyncio.timeout(15):
        while sum(1 for r in polled if r.device.site == "site1") < 4:
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)

    slots = {
        site: [int(r.ts.timestamp()) for r in polled if r.device.site == site]
        for site in ("site1", "site2")
    }
    assert script.site1_closed_while_away  # its connection closed while another replica had it
    assert len(set(slots["site1"])) == len(slots["site1"])  # never a slot twice
    gaps = [b - a for a, b in zip(slots["site1"], slots["site1"][1:], strict=False)]
    assert max(gaps) >= 2  # the slots while it was away are not polled
    assert slots["site2"] == list(range(slots["site2"][0], slots["site2"][-1] + 1))
