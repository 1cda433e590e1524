"""Every fault knob, observed the way a collector would see it, set through the
Python API, the HTTP control endpoint and the fleet file."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ess_simulator.config import load_config
from ess_simulator.faults import FaultSpec
from ess_simulator.simulator import Simulator
from ess_sunspec import MODELS, decode_model, walk_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

Connect = Callable[..., AbstractAsyncContextManager[AsyncModbusTcpClient]]
SunSpecReader = Callable[[AsyncModbusTcpClient, int], Awaitable[list[int]]]
Control = Callable[..., Awaitable[tuple[int, object]]]
SHORT_TIMEOUT_S = 0.3


def read_request(unit: int, address: int = 40000, count: int = 2, transaction: int = 1) -> bytes:
    """A raw Modbus TCP 'read holding registers' frame."""
    return struct.pack(">HHHBBHH", transaction, 0, 6, unit, 3, address, count)


async def raw_connection(
    sim: Simulator, site_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", sim.port(site_id))


@pytest.fixture
async def site1_socket(
    sim: Simulator,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await raw_connection(sim, "site1")
    yield reader, writer
    writer.close()


async def test_mute_times_out_but_keeps_the_connection_open(
    sim: Simulator, modbus: Connect, site1_socket: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    sim.set_fault("site1/bank1/rack2", {"mute": True})
    async with modbus("site1", timeout_s=SHORT_TIMEOUT_S) as client:
        with pytest.raises(ModbusException):
            await client.read_holding_registers(40000, count=2, device_id=3)
        healthy = await client.read_holding_registers(40000, count=2, device_id=2)
        assert healthy.registers == [0x5375, 0x6E53]  # other units still answer
    reader, writer = site1_socket
    writer.write(read_request(unit=3))
    await writer.drain()
    with pytest.raises(TimeoutError):  # no answer and no EOF: the connection stays open
        await asyncio.wait_for(reader.read(1), timeout=SHORT_TIMEOUT_S)


async def test_delay_answers_late(sim: Simulator, modbus: Connect) -> None:
    sim.set_fault("site1/pcs1", FaultSpec(delay_s=0.5))
    async with modbus("site1", timeout_s=2.0) as client:
        started = time.monotonic()
        response = await client.read_holding_registers(40000, count=2, device_id=10)
        assert not response.isError()
        assert time.monotonic() - started >= 0.45
    async with modbus("site1", timeout_s=0.2) as client:
        with pytest.raises(ModbusException):
            await client.read_holding_registers(40000, count=2, device_id=10)


@pytest.mark.parametrize("code", [2, 4, 6])
async def test_exception_code_is_returned(sim: Simulator, modbus: Connect, code: int) -> None:
    sim.set_fault("site1/etc1", {"exception_code": code})
    async with modbus("site1") as client:
        response = await client.read_holding_registers(40000, count=2, device_id=11)
    assert response.isError()
    assert response.exception_code == code


async def test_drop_closes_the_connection_once(
    sim: Simulator, site1_socket: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    sim.set_fault("site1/bank1", {"drop": True})
    reader, writer = site1_socket
    writer.write(read_request(unit=1))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=2.0) == b""  # EOF: closed by the server
    assert sim.faults() == {}  # one-shot: the knob switched itself off
    reader, writer = await raw_connection(sim, "site1")
    try:
        writer.write(read_request(unit=1))
        await writer.drain()
        answer = await asyncio.wait_for(reader.readexactly(13), timeout=2.0)
        assert answer[-4:] == bytes.fromhex("53756e53")  # "SunS"
    finally:
        writer.close()


async def test_drop_probability_one_drops_every_request(sim: Simulator, modbus: Connect) -> None:
    sim.set_fault("site1/bank1", {"drop_probability": 1.0})
    for _ in range(2):
        async with modbus("site1", timeout_s=SHORT_TIMEOUT_S) as client:
            with pytest.raises(ModbusException):
                await client.read_holding_registers(40000, count=2, device_id=1)
            assert not client.connected


async def test_sentinel_mode_reports_not_implemented_but_keeps_the_chain(
    sim: Simulator, modbus: Connect, sunspec_image: SunSpecReader
) -> None:
    sim.set_fault("site1/bank1", {"sentinel": True})
    async with modbus("site1") as client:
        image = await sunspec_image(client, 1)
    headers = {h.model_id: h for h in walk_models(image)}
    assert list(headers) == [1, 802, 803]
    battery = decode_model(MODELS[802], image[headers[802].offset : headers[802].end])
    assert battery.fixed["SoC"] is None
    assert battery.fixed["A"] is None
    assert image[headers[802].offset + 11] == 0xFFFF  # SoC, uint16
    assert image[headers[802].offset + 44] == 0x8000  # A, int16
    assert battery.fixed["SoC_SF"] == -1  # scale factors stay
    bank = decode_model(MODELS[803], image[headers[803].offset : headers[803].end])
    assert len(bank.groups) == 8
    assert all(group["StrSoC"] is None for group in bank.groups)


async def test_sentinel_mode_on_the_vendor_site_gives_nan_and_max_values(
    sim: Simulator, modbus: Connect
) -> None:
    sim.set_fault("site4/bank1", {"sentinel": True})
    async with modbus("site4") as client:
        response = await client.read_input_registers(0, count=14, device_id=1)
    registers = response.registers
    assert registers[0] == 0xFFFF  # uint16 SoC
    assert registers[2:4] == [0xFFFF, 0xFFFF]  # uint32 voltage
    assert registers[4:6] == [0, 0x8000]  # int32 current, swapped words
    assert math.isnan(struct.unpack(">f", struct.pack(">HH", *registers[6:8]))[0])
    assert registers[13] == 0x8000  # int16 temperature


async def test_a_site_fault_applies_to_every_unit_behind_the_gateway(
    sim: Simulator, modbus: Connect
) -> None:
    sim.set_fault("site3", {"exception_code": 6})
    sim.set_fault("site3/pcs1", {"exception_code": 4})  # a device's own fault wins
    async with modbus("site3") as client:
        rack = await client.read_holding_registers(40000, count=2, device_id=2)
        pcs = await client.read_holding_registers(40000, count=2, device_id=13)
    assert rack.exception_code == 6
    assert pcs.exception_code == 4


async def test_http_control_sets_lists_and_clears_faults(
    sim: Simulator, modbus: Connect, control: Control
) -> None:
    status, body = await control("POST", "/faults/site2/bank2/rack5", {"exception_code": 4})
    assert status == 200
    assert body == {
        "target": "site2/bank2/rack5",
        "faults": FaultSpec(exception_code=4).model_dump(),
    }
    async with modbus("site2") as client:
        faulty = await client.read_holding_registers(40000, count=2, device_id=16)
        assert faulty.exception_code == 4
        status, devices = await control("GET", "/devices")
        assert status == 200
        assert isinstance(devices, list)
        listed = {device["device_id"]: device for device in devices}
        assert len(listed) == 11 + 21 + 14 + 12
        assert listed["site2/bank2/rack5"]["unit_id"] == 16
        assert listed["site2/bank2/rack5"]["faults"]["exception_code"] == 4
        assert listed["site2/bank2/rack5"]["port"] == sim.port("site2")
        faults = (await control("GET", "/faults"))[1]
        assert isinstance(faults, dict)
        assert faults.keys() == {"site2/bank2/rack5"}
        status, _ = await control("DELETE", "/faults/site2/bank2/rack5")
        assert status == 200
        healthy = await client.read_holding_registers(40000, count=2, device_id=16)
        assert healthy.registers == [0x5375, 0x6E53]
    assert (await control("POST", "/faults/site9/pcs1", {"mute": True}))[0] == 404
    assert (await control("POST", "/faults/site1/pcs1", {"exception_code": 99}))[0] == 400
    assert (await control("GET", "/healthz")) == (200, {"status": "ok"})


async def test_faults_from_the_fleet_file_are_active_at_start(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "base_port: 0\ncontrol_port: null\n"
        "sites:\n  - {id: s1, banks: {bank1: 2}}\n"
        "faults:\n  s1/etc1: {exception_code: 6}\n"
    )
    async with Simulator(load_config(fleet)) as simulator:
        client = AsyncModbusTcpClient(
            "127.0.0.1", port=simulator.port("s1"), timeout=1.0, retries=0, reconnect_delay=0
        )
        await client.connect()
        try:
            meter = await client.read_holding_registers(40000, count=2, device_id=5)
            rack = await client.read_holding_registers(40000, count=2, device_id=2)
        finally:
            client.close()
    assert meter.exception_code == 6
    assert rack.registers == [0x5375, 0x6E53]
