"""A device that stops answering is backed off; one that answers is polled every slot."""

from __future__ import annotations

import random
import time

import pytest

from ess_collector.device import Device, Health, PollLimits
from ess_collector.errors import ConnectionLostError, ExceptionReplyError, RequestTimeoutError
from ess_collector.inventory import DeviceConfig, MapPoint, RegisterMap
from ess_collector.modbus_frames import ReadFunction
from ess_collector.planning import Space
from ess_collector.values import build_reading
from ess_common.backoff import Backoff
from ess_common.model import Quality

LIMITS = PollLimits(request_timeout_s=0.2, max_registers=125, gap_fill=0)
RACK_MAP = RegisterMap(
    table="rack",
    points=[
        MapPoint(
            name="SoC", field="soc_pct", space=Space.INPUT, address=0, type="uint16", scale=0.1
        ),
        MapPoint(
            name="SoH", field="soh_pct", space=Space.HOLDING, address=0, type="uint16", scale=0.1
        ),
    ],
)


class ScriptedReader:
    """Answers reads from a script: a value list, or an error to raise."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.reads = 0

    async def read(
        self, function: ReadFunction, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int] | list[bool]:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return [500] * count

    async def read_holding_registers(
        self, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int]:
        raise AssertionError("not a SunSpec device")


def health_of(device: Device) -> Health:
    """Read afresh (a plain attribute access would stay narrowed across polls)."""
    return device.health


def _device() -> Device:
    config = DeviceConfig(id="site1/bank1/rack1", unit=2, register_map="m")
    return Device(config, RACK_MAP, Backoff(1.0, 8.0, random.Random(3)))


async def test_a_healthy_device_reads_every_point() -> None:
    device, reader = _device(), ScriptedReader()
    result = await device.poll(reader, LIMITS)
    assert result.errors == []
    assert result.decoded is not None
    assert result.decoded.values == {"soc_pct": 50.0, "soh_pct": 50.0}
    assert device.health is Health.UP
    assert device.probe_due(0.0)


async def test_a_silent_device_goes_down_and_is_asked_again_only_after_its_backoff() -> None:
    device, reader = _device(), ScriptedReader()
    reader.failure = RequestTimeoutError("no reply")
    result = await device.poll(reader, LIMITS)
    assert result.decoded is None
    assert reader.reads == 1  # the second read of the poll is skipped: the unit is silent
    assert health_of(device) is Health.DOWN
    first_probe = device.next_probe_monotonic
    assert not device.probe_due(first_probe - 0.01)
    assert device.probe_due(first_probe)
    await device.poll(reader, LIMITS)
    second_delay = device.next_probe_monotonic - time.monotonic()
    assert 0.95 <= second_delay <= 2.0  # base doubled from 1 s to 2 s, jittered in [1, 2]
    assert device.backoff.failures == 2
    reader.failure = None
    result = await device.poll(reader, LIMITS)
    assert result.decoded is not None
    assert health_of(device) is Health.UP
    assert device.backoff.failures == 0


async def test_an_exception_reply_makes_a_partial_reading_not_a_down_device() -> None:
    device = _device()

    class HoldingFails(ScriptedReader):
        async def read(
            self, function: ReadFunction, unit: int, address: int, count: int, timeout_s: float
        ) -> list[int] | list[bool]:
            if function is ReadFunction.READ_HOLDING_REGISTERS:
                raise ExceptionReplyError(4)
            return await super().read(function, unit, address, count, timeout_s)

    result = await device.poll(HoldingFails(), LIMITS)
    assert [e.reason for e in result.errors] == ["exception_device_failure"]
    assert result.decoded is not None
    assert result.decoded.values == {"soc_pct": 50.0, "soh_pct": None}
    assert Quality.PARTIAL in result.decoded.quality
    assert device.health is Health.UP


async def test_a_lost_connection_stops_the_poll_without_marking_the_device_down() -> None:
    device, reader = _device(), ScriptedReader()
    reader.failure = ConnectionLostError("reset")
    result = await device.poll(reader, LIMITS)
    assert result.decoded is None
    assert reader.reads == 1
    assert device.health is Health.UP  # the endpoint reconnects; the device did nothing wrong


@pytest.mark.parametrize(("read_at", "late"), [(1000.999, False), (1001.0, True)])
async def test_a_reading_taken_after_its_second_is_flagged_late(read_at: float, late: bool) -> None:
    device = _device()
    result = await device.poll(ScriptedReader(), LIMITS)
    assert result.decoded is not None
    reading = build_reading(device.device_id, 1000, read_at, result.decoded)
    assert (Quality.LATE in reading.quality) is late
    assert reading.ts.timestamp() == 1000


async def test_a_device_no_read_can_fetch_is_reported_and_backed_off_not_crashed() -> None:
    long_string = RegisterMap(
        table="rack",
        points=[
            MapPoint(name="Serial", space=Space.HOLDING, address=0, type="string", registers=16)
        ],
    )
    config = DeviceConfig(id="site1/bank1/rack1", unit=2, register_map="m")
    device = Device(config, long_string, Backoff(1.0, 8.0, random.Random(3)))
    narrow = PollLimits(request_timeout_s=0.2, max_registers=10, gap_fill=0)
    reader = ScriptedReader()
    result = await device.poll(reader, narrow)
    assert [e.reason for e in result.errors] == ["plan"]
    assert result.decoded is None
    assert reader.reads == 0
    assert health_of(device) is Health.DOWN
