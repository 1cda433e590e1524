"""One Modbus TCP server per site, acting as the site's gateway.

pymodbus does the framing and PDU coding; this module decides how each request
is answered, applying the target device's faults first: drop the connection,
stay mute, answer late, answer with an exception, or answer from the datastore.
Requests are answered in their own tasks so one slow unit does not hold up
the others on the same connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from ess_simulator.datastore import SiteDatastore
from ess_simulator.faults import FaultBoard

log = logging.getLogger(__name__)


class SiteRequestHandler(ServerRequestHandler):
    """One client connection to a site gateway."""

    def __init__(self, owner: SiteGatewayServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)  # type: ignore[no-untyped-call]
        self._gateway = owner
        self._pending: set[asyncio.Task[None]] = set()

    def handle_later(self) -> None:
        # Take the request now: last_pdu is overwritten by the next frame.
        pdu, addr = self.last_pdu, self.last_addr
        if pdu is None:
            return
        task = asyncio.get_running_loop().create_task(self._answer(pdu, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _answer(self, pdu: ModbusPDU, addr: Any) -> None:
        try:
            response = await self._gateway.respond(pdu, self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request to unit %s failed", pdu.dev_id)
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        if response is None or self.transport is None:
            return
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        self.server_send(response, addr)  # type: ignore[no-untyped-call]

    def drop_connection(self) -> None:
        """Close this TCP connection now, abandoning its other pending answers."""
        current = asyncio.current_task()
        for task in list(self._pending):
            if task is not current:
                task.cancel()
        self.close()

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        for task in list(self._pending):
            task.cancel()


def _placeholder_device() -> SimDevice:
    # pymodbus insists on a datastore of its own; requests never reach it
    # because SiteRequestHandler answers from the SiteDatastore.
    return SimDevice(id=0, simdata=[SimData(0, datatype=DataType.REGISTERS)])


class SiteGatewayServer(ModbusTcpServer):
    """The Modbus TCP endpoint of one site; unit ids select the device."""

    def __init__(
        self,
        datastore: SiteDatastore,
        faults: FaultBoard,
        host: str,
        port: int,
        rng: random.Random,
        *,
        framer: FramerType = FramerType.SOCKET,
    ) -> None:
        super().__init__(_placeholder_device(), address=(host, port), framer=framer)
        self.datastore = datastore
        self._faults = faults
        self._rng = rng

    def callback_new_connection(self) -> SiteRequestHandler:
        return SiteRequestHandler(self)

    async def start(self) -> None:
        try:
            await self.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus reports bind failures this way
            raise OSError(str(exc)) from exc

    async def stop(self) -> None:
        await self.shutdown()  # type: ignore[no-untyped-call]

    @property
    def bound_port(self) -> int:
        """The port actually listened on (differs from the asked one for port 0)."""
        server = self.transport
        if not isinstance(server, asyncio.Server) or not server.sockets:
            raise RuntimeError("gateway is not listening")
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def respond(self, pdu: ModbusPDU, handler: SiteRequestHandler) -> ModbusPDU | None:
        """The response to send, or None to send nothing."""
        endpoint = self.datastore.endpoint(pdu.dev_id)
        if endpoint is None:
            return ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
        action = self._faults.action(endpoint.device.device_id, self.datastore.site_id, self._rng)
        if action is not None:
            if action.drop:
                log.info("dropping connection on request to %s", endpoint.device.device_id)
                handler.drop_connection()
                return None
            if action.mute:
                return None
            if action.delay_s > 0:
                await asyncio.sleep(action.delay_s)
            if action.exception_code is not None:
                return ExceptionResponse(pdu.function_code, action.exception_code)
        response: ModbusPDU = await pdu.datastore_update(self.datastore, pdu.dev_id)  # type: ignore[arg-type]
        return response
