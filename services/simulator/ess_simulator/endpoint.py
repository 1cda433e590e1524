"""One device behind a site gateway: its register spaces at a given second."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ess_simulator.packed_spaces import PackedSpaces
from ess_simulator.site_model import SiteModel
from ess_simulator.spaces import RegisterSpaces
from ess_simulator.sunspec_image import common_block, sunspec_holding_registers
from ess_simulator.topology import DevicePlan
from ess_simulator.vendor_image import vendor_spaces
from ess_simulator.vendor_map import VendorPoint

_T = TypeVar("_T")


class DeviceEndpoint:
    """Renders a device's spaces once per (second, sentinel) and keeps the last two
    (the fast gateway renders the next second ahead while the current one is read)."""

    def __init__(
        self, device: DevicePlan, site: SiteModel, vendor_points: Sequence[VendorPoint] | None
    ) -> None:
        self.device = device
        self._site = site
        self._vendor_points = vendor_points
        self._common = common_block(device) if vendor_points is None else None
        self._cached: dict[tuple[int, bool], RegisterSpaces] = {}
        self._packed: dict[tuple[int, bool], PackedSpaces] = {}
        self.last_read_second: int | None = None  # fast gateway: prerender what is polled

    @property
    def protocol(self) -> str:
        return "sunspec" if self._vendor_points is None else "vendor"

    def spaces(self, second: int, sentinel: bool) -> RegisterSpaces:
        key = (second, sentinel)
        cached = self._cached.get(key)
        if cached is not None:
            return cached
        if self._vendor_points is None:
            snapshot = self._site.snapshot(second)
            rendered = RegisterSpaces(
                holding=sunspec_holding_registers(self.device, snapshot, sentinel, self._common)
            )
        else:
            reading = self._site.reading(self.device, second)
            rendered = vendor_spaces(self.device, reading, self._vendor_points, sentinel)
        _keep_two(self._cached, key, rendered)
        return rendered

    def packed(self, second: int, sentinel: bool) -> PackedSpaces:
        """The same spaces as reply bytes, packed once per (second, sentinel)."""
        key = (second, sentinel)
        packed = self._packed.get(key)
        if packed is None:
            packed = PackedSpaces(self.spaces(second, sentinel))
            _keep_two(self._packed, key, packed)
        return packed


def _keep_two(cache: dict[tuple[int, bool], _T], key: tuple[int, bool], value: _T) -> None:
    cache[key] = value
    while len(cache) > 2:
        del cache[min(cache)]
