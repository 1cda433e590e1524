"""Vendor register encoding and the HTTP control routes, without sockets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from ess_simulator.config import load_config
from ess_simulator.control_http import HttpError, route
from ess_simulator.faults import FaultBoard, FaultSpec
from ess_simulator.site_model import SiteModel
from ess_simulator.topology import DeviceKind, plan_fleet
from ess_simulator.vendor_image import (
    decode_vendor_point,
    device_fields,
    encode_point_registers,
    vendor_spaces,
)
from ess_simulator.vendor_map import Space, VendorPoint, load_vendor_map

pytestmark = pytest.mark.unit

T0 = 1_750_000_000
FUNCTION = {Space.COIL: 1, Space.DISCRETE: 2, Space.HOLDING: 3, Space.INPUT: 4}


def test_vendor_points_round_trip_every_device_kind() -> None:
    config = load_config(None)
    vendor_map = load_vendor_map(Path(config.vendor_map))
    site = plan_fleet(config)[3]
    model = SiteModel(site, config)
    for device in site.devices:
        reading = model.reading(device, T0)
        fields = device_fields(device, reading)
        spaces = vendor_spaces(device, reading, vendor_map.points(device.kind), sentinel=False)
        for point in vendor_map.points(device.kind):
            raw = spaces.read(FUNCTION[point.space], point.address, point.width)
            assert raw is not None, point.name
            value = decode_vendor_point(point, raw)
            expected = fields[point.field]
            if isinstance(expected, bool) or point.type == "string":
                assert value == expected, point.name
            else:
                assert isinstance(value, float | int)
                tolerance = abs(point.scale) / 2 + abs(float(expected or 0)) * 1e-6
                assert value == pytest.approx(float(expected or 0), abs=tolerance), point.name


def test_swapped_word_order_puts_the_low_word_first() -> None:
    big = VendorPoint(name="p", field="power_w", space=Space.INPUT, address=0, type="int32")
    little = VendorPoint.model_validate({**big.model_dump(), "word_order": "little"})
    assert encode_point_registers(big, 70_000, sentinel=False) == [1, 4464]
    assert encode_point_registers(little, 70_000, sentinel=False) == [4464, 1]


def test_scale_and_offset_invert_on_the_way_in() -> None:
    point = VendorPoint(
        name="t", field="x", space=Space.INPUT, address=0, type="uint16", scale=0.1, offset=-40.0
    )
    assert encode_point_registers(point, 25.0, sentinel=False) == [650]
    assert decode_vendor_point(point, [650]) == 25.0


@pytest.mark.parametrize(
    ("point_type", "sentinel"),
    [("int16", [0x8000]), ("uint16", [0xFFFF]), ("int32", [0x8000, 0]), ("uint32", [0xFFFF] * 2)],
)
def test_sentinel_mode_writes_not_implemented_patterns(
    point_type: str, sentinel: list[int]
) -> None:
    point = VendorPoint(name="p", field="x", space=Space.INPUT, address=0, type=point_type)
    assert encode_point_registers(point, 12, sentinel=True) == sentinel
    assert decode_vendor_point(point, sentinel) is None


def test_float_sentinel_is_nan_in_the_points_word_order() -> None:
    point = VendorPoint(
        name="p", field="x", space=Space.INPUT, address=0, type="float32", word_order="little"
    )
    registers = encode_point_registers(point, 1.0, sentinel=True)
    assert registers == [0, 0x7FC0]
    assert decode_vendor_point(point, registers) is None


def test_status_bits_share_one_register() -> None:
    config = load_config(None)
    vendor_map = load_vendor_map(Path(config.vendor_map))
    site = plan_fleet(config)[3]
    bank = site.devices[0]
    reading = SiteModel(site, config).reading(bank, T0)
    points = vendor_map.points(DeviceKind.BANK)
    spaces = vendor_spaces(bank, reading, points, sentinel=False)
    status = [p for p in points if p.type == "bit" and p.space is Space.INPUT]
    word = spaces.input[status[0].address]
    fields = device_fields(bank, reading)
    for point in status:
        assert bool(word >> (point.bit or 0) & 1) == fields[point.field]
    assert not math.isnan(word)


class FakeApi:
    def __init__(self) -> None:
        self.board = FaultBoard({"s1", "s1/pcs1"})

    def devices(self) -> list[dict[str, Any]]:
        return [{"device_id": "s1/pcs1"}]

    def inventory(self) -> dict[str, Any]:
        return {"sites": []}

    def faults(self) -> dict[str, FaultSpec]:
        return self.board.snapshot()

    def set_fault(self, target: str, spec: FaultSpec) -> FaultSpec:
        return self.board.set(target, spec)

    def clear_fault(self, target: str) -> None:
        self.board.clear(target)

    def clear_faults(self) -> None:
        self.board.clear_all()


def test_control_routes_set_list_and_clear_faults() -> None:
    api = FakeApi()
    status, body = route(api, "POST", "/faults/s1/pcs1", json.dumps({"mute": True}).encode())
    assert status == 200
    assert body["faults"]["mute"] is True
    assert route(api, "GET", "/faults", b"")[1]["s1/pcs1"]["mute"] is True
    assert route(api, "POST", "/faults/s1%2Fpcs1", b'{"delay_s": 2}')[1]["faults"]["mute"] is False
    assert route(api, "DELETE", "/faults/s1/pcs1", b"")[0] == 200
    assert route(api, "GET", "/faults", b"")[1] == {}
    assert route(api, "GET", "/devices", b"")[1] == [{"device_id": "s1/pcs1"}]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/faults/s9/pcs1", b"{}", 404),
        ("POST", "/faults/s1/pcs1", b'{"exception_code": 9}', 400),
        ("POST", "/faults/s1/pcs1", b'{"bogus": 1}', 400),
        ("POST", "/faults/s1/pcs1", b"not json", 400),
        ("PUT", "/faults", b"", 405),
        ("GET", "/nothing", b"", 404),
    ],
)
def test_control_routes_reject_bad_requests(
    method: str, path: str, body: bytes, status: int
) -> None:
    with pytest.raises(HttpError) as caught:
        route(FakeApi(), method, path, body)
    assert caught.value.status == status
