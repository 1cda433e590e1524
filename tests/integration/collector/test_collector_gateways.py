"""Gateways as in the field: RTU framing over TCP gives the same readings as Modbus
TCP; pipelined requests cut lateness on a slow link and keep every slot; replies
that come back out of order are matched by transaction id."""

from __future__ import annotations

import asyncio
import random
import statistics
from pathlib import Path

import pytest

from ess_collector.device import Device, PollLimits
from ess_collector.modbus_client import ReadOnlyModbusClient
from ess_collector.modbus_frames import ReadFunction
from ess_common.backoff import Backoff
from ess_common.settings import CommonSettings
from ess_simulator.simulator import Simulator
from helpers.collector import (
    collector_settings,
    inventory_for,
    run_collector,
    simulated_sites,
    with_endpoint_settings,
)

pytestmark = pytest.mark.timeout(120)
FROZEN_T = 1_750_000_000.25  # both simulators answer the same second
LIMITS = PollLimits(request_timeout_s=1.0, max_registers=125, gap_fill=0)


async def _readings(simulator: Simulator, framing: str) -> dict[str, object]:
    """Every device of the simulator polled once: values, extras and quality."""
    inventory = inventory_for(simulator)
    out: dict[str, object] = {}
    for site in inventory.sites:
        endpoint = site.endpoints[0]
        assert endpoint.framing == framing
        client = ReadOnlyModbusClient(endpoint.host, endpoint.port, framing=framing)
        await client.connect(2.0)
        try:
            for config in endpoint.devices:
                maps = inventory.register_maps
                register_map = maps[config.register_map] if config.register_map else None
                device = Device(config, register_map, Backoff(1, 2, random.Random(1)))
                result = await device.poll(client, LIMITS)
                assert not result.errors, (config.id, result.errors)
                assert result.decoded is not None
                out[config.id] = (
                    result.decoded.values,
                    result.decoded.extras,
                    result.decoded.quality,
                )
        finally:
            await client.close()
    return out


@pytest.mark.parametrize("serving", ["pymodbus", "fast"])
async def test_rtu_over_tcp_gives_the_same_readings_as_modbus_tcp(serving: str) -> None:
    sites = ("site1", "site4")  # SunSpec and the vendor register map
    async with simulated_sites(*sites, clock=lambda: FROZEN_T) as tcp:
        over_tcp = await _readings(tcp, "tcp")
    async with simulated_sites(
        *sites, framing="rtu", serving=serving, clock=lambda: FROZEN_T
    ) as rtu:
        over_rtu = await _readings(rtu, "rtu")
    assert len(over_tcp) == 11 + 12
    assert over_rtu == over_tcp


async def test_replies_out_of_order_are_matched_by_transaction_id() -> None:
    async with simulated_sites("site1", serving="fast", clock=lambda: FROZEN_T) as simulator:
        port = simulator.port("site1")
        sequential = ReadOnlyModbusClient("127.0.0.1", port)
        await sequential.connect(2.0)
        expected = {
            unit: await sequential.read(ReadFunction.READ_HOLDING_REGISTERS, unit, 40000, 70, 1.0)
            for unit in (1, 2, 3)
        }
        await sequential.close()
        simulator.set_fault("site1/bank1", {"delay_s": 0.3})  # unit 1 answers last
        simulator.set_fault("site1/bank1/rack1", {"delay_s": 0.15})
        pipelined = ReadOnlyModbusClient("127.0.0.1", port, in_flight=3)
        await pipelined.connect(2.0)
        order: list[int] = []

        async def read(unit: int) -> list[int] | list[bool]:
            values = await pipelined.read(ReadFunction.READ_HOLDING_REGISTERS, unit, 40000, 70, 1.0)
            order.append(unit)
            return values

        got = await asyncio.gather(*(read(unit) for unit in (1, 2, 3)))
        await pipelined.close()
    assert order == [3, 2, 1]  # the replies came back in the reverse order of the requests
    assert dict(zip((1, 2, 3), got, strict=True)) == expected


async def _lateness_with(
    in_flight: int, settings: CommonSettings, prefix: str, spool: Path
) -> tuple[list[float], dict[str, list[int]], int]:
    async with simulated_sites("site1", serving="fast") as simulator:
        simulator.set_fault("site1", {"delay_s": 0.03})  # a high-latency site link
        inventory = with_endpoint_settings(inventory_for(simulator), requests_in_flight=in_flight)
        config = collector_settings(settings.kafka_bootstrap, prefix, spool)
        async with run_collector(config, inventory) as (service, collected):
            await asyncio.sleep(3)  # discovery walks the chains at 30 ms a request
            start = len(collected.readings)
            await asyncio.sleep(6)
            window = collected.readings[start:]
        overruns = sum(e.overruns for e in service.endpoints)
    slots: dict[str, list[int]] = {}
    for reading in window:
        slots.setdefault(reading.device.key, []).append(int(reading.ts.timestamp()))
    lateness = [(r.read_at - r.ts).total_seconds() for r in window]
    return lateness, slots, overruns


async def test_pipelined_requests_cut_lateness_on_a_slow_link_and_keep_every_slot(
    settings: CommonSettings, telemetry_prefix: str, tmp_path: Path
) -> None:
    one, _, _ = await _lateness_with(1, settings, telemetry_prefix, tmp_path / "one")
    four, four_slots, overruns = await _lateness_with(
        4, settings, telemetry_prefix, tmp_path / "four"
    )
    assert overruns == 0
    assert len(four_slots) == 11
    for device, slots in four_slots.items():
        assert slots == list(range(slots[0], slots[0] + len(slots))), device
        assert len(slots) >= 5, device
    # 12 requests of 30 ms each: ~0.2 s median one at a time, a quarter of it with four
    assert statistics.median(four) < 0.6 * statistics.median(one)
    assert max(four) < max(one)
