"""The vendor-protocol site over Modbus TCP: every point of vendor_map.yaml
decodes, with its word and byte order, to the battery model's value."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from ess_simulator.simulator import Simulator
from ess_simulator.site_model import SiteModel
from ess_simulator.vendor_image import decode_vendor_point, device_fields
from ess_simulator.vendor_map import Space, VendorPoint, load_vendor_map

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

Connect = Callable[..., AbstractAsyncContextManager[AsyncModbusTcpClient]]


async def read_point(
    client: AsyncModbusTcpClient, unit: int, point: VendorPoint
) -> list[int] | list[bool]:
    reads = {
        Space.COIL: client.read_coils,
        Space.DISCRETE: client.read_discrete_inputs,
        Space.HOLDING: client.read_holding_registers,
        Space.INPUT: client.read_input_registers,
    }
    response = await reads[point.space](point.address, count=point.width, device_id=unit)
    assert not response.isError(), (point.name, response)
    if point.space in (Space.COIL, Space.DISCRETE):
        return list(response.bits[: point.width])
    return list(response.registers)


async def test_vendor_points_decode_as_the_map_describes(
    sim: Simulator, modbus: Connect, frozen_second: int
) -> None:
    site4 = sim.sites[3]
    assert site4.protocol == "vendor"
    vendor_map = load_vendor_map(Path(sim.config.vendor_map))
    model = SiteModel(site4, sim.config)
    orders: set[tuple[str, str]] = set()
    async with modbus("site4") as client:
        marker = await client.read_holding_registers(40000, count=2, device_id=1)
        assert marker.exception_code == 2  # no SunSpec here
        for device in site4.devices:
            fields = device_fields(device, model.reading(device, frozen_second))
            for point in vendor_map.points(device.kind):
                value = decode_vendor_point(point, await read_point(client, device.unit_id, point))
                expected = fields[point.field]
                if point.width > 1:
                    orders.add((point.word_order.value, point.byte_order.value))
                if isinstance(expected, bool | str):
                    assert value == expected, (device.device_id, point.name)
                else:
                    tolerance = abs(point.scale) / 2 + abs(float(expected or 0)) * 1e-6
                    assert value == pytest.approx(expected, abs=tolerance), point.name
    assert {("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")} <= orders


async def test_vendor_status_word_and_bits(sim: Simulator, modbus: Connect) -> None:
    async with modbus("site4") as client:
        coils = await client.read_coils(0, count=1, device_id=1)
        discrete = await client.read_discrete_inputs(0, count=2, device_id=1)
        status = await client.read_input_registers(16, count=1, device_id=1)
        gap = await client.read_input_registers(21, count=10, device_id=1)
    assert coils.bits[0] is True  # all contactors closed
    assert len(discrete.bits) >= 2
    assert status.registers[0] & 0b10000  # bit 4: contactors closed
    assert gap.exception_code == 2
