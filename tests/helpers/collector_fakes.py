"""In-memory stand-ins for the collector's adapters (unit tests, no I/O)."""

from __future__ import annotations

from ess_collector.modbus_frames import ReadFunction


class FakeModbus:
    """A gateway whose unit `u` holds `500 + u` in every register."""

    def __init__(self, host: str = "gateway.invalid", port: int = 502) -> None:
        self.connected = False
        self.closed = False

    def is_connected(self) -> bool:
        return self.connected

    async def connect(self, timeout_s: float) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected, self.closed = False, True

    async def read(
        self, function: ReadFunction, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int] | list[bool]:
        return [500 + unit] * count

    async def read_holding_registers(
        self, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int]:
        raise AssertionError("not a SunSpec device")
