"""One device behind a site gateway: its register spaces at a given second."""

from __future__ import annotations

from collections.abc import Sequence

from ess_simulator.site_model import SiteModel
from ess_simulator.spaces import RegisterSpaces
from ess_simulator.sunspec_image import common_block, sunspec_holding_registers
from ess_simulator.topology import DevicePlan
from ess_simulator.vendor_image import vendor_spaces
from ess_simulator.vendor_map import VendorPoint


class DeviceEndpoint:
    """Renders a device's spaces once per (second, sentinel) and keeps the last."""

    def __init__(
        self, device: DevicePlan, site: SiteModel, vendor_points: Sequence[VendorPoint] | None
    ) -> None:
        self.device = device
        self._site = site
        self._vendor_points = vendor_points
        self._common = common_block(device) if vendor_points is None else None
        self._cached: tuple[int, bool, RegisterSpaces] | None = None

    @property
    def protocol(self) -> str:
        return "sunspec" if self._vendor_points is None else "vendor"

    def spaces(self, second: int, sentinel: bool) -> RegisterSpaces:
        cached = self._cached
        if cached is not None and cached[0] == second and cached[1] == sentinel:
            return cached[2]
        if self._vendor_points is None:
            snapshot = self._site.snapshot(second)
            rendered = RegisterSpaces(
                holding=sunspec_holding_registers(self.device, snapshot, sentinel, self._common)
            )
        else:
            reading = self._site.reading(self.device, second)
            rendered = vendor_spaces(self.device, reading, self._vendor_points, sentinel)
        self._cached = (second, sentinel, rendered)
        return rendered
