"""A wall clock stepped back (NTP) must not stop the pollers, nor trip the liveness probe.

The endpoint's wall clock is replaced by a fake one that can be stepped; the
event loop keeps its own monotonic time, as in production.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ess_collector import endpoint as endpoint_module
from ess_collector.device import Device, PollLimits
from ess_collector.endpoint import EndpointPoller
from ess_collector.inventory import DeviceConfig, EndpointConfig, MapPoint, RegisterMap
from ess_collector.metrics import CollectorMetrics
from ess_collector.planning import Space
from ess_collector.schedule import next_slot
from ess_common.backoff import Backoff
from ess_common.model import Reading
from helpers.collector import wait_until
from helpers.collector_fakes import FakeModbus

RACK_MAP = RegisterMap(
    table="rack",
    points=[
        MapPoint(
            name="SoC", field="soc_pct", space=Space.INPUT, address=0, type="uint16", scale=0.1
        )
    ],
)
DEVICE = DeviceConfig(id="site1/bank1/rack1", unit=1, register_map="rack")


class SteppableClock:
    """`time.time` that can be stepped; `time.monotonic` stays the real one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


def test_a_big_step_back_follows_the_clock_a_small_one_is_waited_out() -> None:
    assert next_slot(999.5, last_slot=1001) == 1002  # 1.5 s back: wait 2.5 s, no slot twice
    assert next_slot(941.5, last_slot=1001) == 942  # 60 s back: poll on the next boundary


async def test_pollers_keep_polling_when_the_wall_clock_steps_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = SteppableClock()
    monkeypatch.setattr(endpoint_module, "time", clock)
    readings: list[Reading] = []
    poller = EndpointPoller(
        "site1",
        EndpointConfig(host="gateway.invalid", devices=[DEVICE]),
        client=FakeModbus(),
        devices=[Device(DEVICE, RACK_MAP, Backoff(1.0, 60.0))],
        limits=PollLimits(request_timeout_s=0.2, max_registers=125, gap_fill=0),
        connect_timeout_s=1.0,
        reconnect=Backoff(1.0, 60.0),
        metrics=CollectorMetrics(CollectorRegistry()),
        emit=readings.append,
        cycle_done=lambda: None,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await wait_until(lambda: len(readings) >= 2, 5, "two polls")
        clock.offset = -120.0  # NTP steps the clock back two minutes
        stepped = time.monotonic()
        before = len(readings)
        # the old schedule slept 120 s here
        await wait_until(lambda: len(readings) >= before + 2, 4, "polls after the step")
        assert poller.last_cycle_monotonic > stepped  # the liveness probe sees it turning
        after = [r.ts.timestamp() for r in readings[before:]]
        assert after == sorted(after)
        assert all(s < clock.time() + 1 for s in after)  # stamped by the new clock
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
