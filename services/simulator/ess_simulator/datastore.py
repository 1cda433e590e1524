"""A site gateway's datastore: answers pymodbus reads from the device models.

pymodbus calls async_getValues / async_setValues with the unit id; returning
an ExcCodes member makes it send that exception response. The simulator is
read-only from the client's side, so writes answer "illegal function".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pymodbus.constants import ExcCodes

from ess_simulator.endpoint import DeviceEndpoint
from ess_simulator.faults import FaultBoard
from ess_simulator.spaces import READ_FUNCTION_SPACES

MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000


class SiteDatastore:
    def __init__(
        self,
        site_id: str,
        endpoints: Sequence[DeviceEndpoint],
        faults: FaultBoard,
        clock: Callable[[], float],
    ) -> None:
        self.site_id = site_id
        self._endpoints = {endpoint.device.unit_id: endpoint for endpoint in endpoints}
        self._faults = faults
        self._clock = clock

    def endpoint(self, unit_id: int) -> DeviceEndpoint | None:
        return self._endpoints.get(unit_id)

    def device_ids(self) -> list[int]:
        return sorted(self._endpoints)

    def _target(
        self, unit_id: int, function_code: int, count: int
    ) -> tuple[DeviceEndpoint, int, bool] | ExcCodes:
        """(endpoint, second, sentinel) a read is answered from, or its exception."""
        if function_code not in READ_FUNCTION_SPACES:
            return ExcCodes.ILLEGAL_FUNCTION
        limit = MAX_READ_BITS if function_code in (1, 2) else MAX_READ_REGISTERS
        if not 1 <= count <= limit:
            return ExcCodes.ILLEGAL_VALUE
        endpoint = self._endpoints.get(unit_id)
        if endpoint is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        return endpoint, math.floor(self._clock()), self.sentinel(endpoint)

    def sentinel(self, endpoint: DeviceEndpoint) -> bool:
        hit = self._faults.effective(endpoint.device.device_id, self.site_id)
        return hit is not None and hit[1].sentinel

    def read(
        self, unit_id: int, function_code: int, address: int, count: int
    ) -> list[int] | list[bool] | ExcCodes:
        target = self._target(unit_id, function_code, count)
        if isinstance(target, ExcCodes):
            return target
        endpoint, second, sentinel = target
        values = endpoint.spaces(second, sentinel).read(function_code, address, count)
        return ExcCodes.ILLEGAL_ADDRESS if values is None else values

    def read_bytes(self, unit_id: int, function_code: int, address: int, count: int) -> bytes | int:
        """The data bytes of the reply (as `read`, packed), or an exception code."""
        target = self._target(unit_id, function_code, count)
        if isinstance(target, ExcCodes):
            return int(target.value)
        endpoint, second, sentinel = target
        endpoint.last_read_second = second
        data = endpoint.packed(second, sentinel).read(function_code, address, count)
        return int(ExcCodes.ILLEGAL_ADDRESS.value) if data is None else data

    def endpoints(self) -> list[DeviceEndpoint]:
        return list(self._endpoints.values())

    async def async_getValues(  # noqa: N802 - pymodbus's datastore interface
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        return self.read(device_id, func_code, address, count)

    async def async_setValues(  # noqa: N802 - pymodbus's datastore interface
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION
