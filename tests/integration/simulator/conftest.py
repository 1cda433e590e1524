"""A real simulator on loopback with free ports and a frozen clock, plus
small Modbus/HTTP client helpers handed out as fixtures (test modules cannot
import conftest). Every simulator started here is stopped."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from ess_simulator.config import FleetConfig, load_config
from ess_simulator.simulator import Simulator
from ess_sunspec import SUNS_MARKER, walk_models

FROZEN_T = 1_750_000_000.25  # every read sees the same second: values are comparable
SUNSPEC_BASE = 40000
MAX_REGISTERS = 125


def free_port_config(**changes: Any) -> FleetConfig:
    config = load_config(None)
    data = {**config.model_dump(), "base_port": 0, "control_port": 0, **changes}
    return FleetConfig.model_validate(data)


@pytest.fixture(params=["pymodbus", "fast"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """Both serving modes answer every test the same way."""
    config = free_port_config(serving=request.param)
    async with Simulator(config, clock=lambda: FROZEN_T) as simulator:
        yield simulator


@pytest.fixture
def modbus(
    sim: Simulator,
) -> Callable[..., AbstractAsyncContextManager[AsyncModbusTcpClient]]:
    """`async with modbus("site1", timeout_s=0.5) as client:` - a connected client."""

    @asynccontextmanager
    async def connect(site_id: str, timeout_s: float = 1.0) -> AsyncIterator[AsyncModbusTcpClient]:
        client = AsyncModbusTcpClient(
            "127.0.0.1", port=sim.port(site_id), timeout=timeout_s, retries=0, reconnect_delay=0
        )
        assert await client.connect()
        try:
            yield client
        finally:
            client.close()

    return connect


async def read_registers(
    client: AsyncModbusTcpClient, unit: int, address: int, count: int
) -> list[int]:
    registers: list[int] = []
    while count > 0:
        chunk = min(count, MAX_REGISTERS)
        response = await client.read_holding_registers(address, count=chunk, device_id=unit)
        assert not response.isError(), response
        registers += response.registers
        address, count = address + chunk, count - chunk
    return registers


async def read_sunspec_image(client: AsyncModbusTcpClient, unit: int) -> list[int]:
    """Walk the chain over Modbus like a scanner: header, body, next header."""
    image = await read_registers(client, unit, SUNSPEC_BASE, 2)
    assert tuple(image) == SUNS_MARKER
    while True:
        model_id, length = await read_registers(client, unit, SUNSPEC_BASE + len(image), 2)
        image += [model_id, length]
        if model_id == 0xFFFF:
            walk_models(image)  # validates the whole chain
            return image
        image += await read_registers(client, unit, SUNSPEC_BASE + len(image), length)


async def http(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP/1.1 request to the control endpoint; status and decoded JSON."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(data)}\r\n\r\n"
    writer.write(head.encode() + data)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    status_line, _, payload = raw.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


SunSpecReader = Callable[[AsyncModbusTcpClient, int], Awaitable[list[int]]]
Control = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def frozen_second() -> int:
    """The second every read of the `sim` fixture sees."""
    return math.floor(FROZEN_T)


@pytest.fixture
def sunspec_image() -> SunSpecReader:
    return read_sunspec_image


@pytest.fixture
def control(sim: Simulator) -> Control:
    """`await control("POST", "/faults/site1/pcs1", {...})` against the sim's HTTP port."""
    port = sim.control_port
    assert port is not None

    async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await http(port, method, path, body)

    return call
