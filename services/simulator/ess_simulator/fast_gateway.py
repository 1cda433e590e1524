"""A site gateway that answers from packed register images (`serving: fast`).

The pymodbus gateway decodes each request into PDU objects, dispatches it to
the datastore one register at a time and encodes the response: fine for a
few hundred devices, the ceiling of a benchmark at a few thousand. This one
cuts frames itself (`wire`), answers a read with one slice of the device's
image packed once per second (`PackedSpaces`), and applies the same fault
knobs (`FaultBoard.action`). A delayed answer is a timer, so replies to
requests pipelined on one connection come back in whatever order their
delays give, matched by transaction id on Modbus TCP.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from ess_simulator import wire
from ess_simulator.datastore import SiteDatastore
from ess_simulator.faults import FaultBoard

log = logging.getLogger(__name__)

GATEWAY_NO_RESPONSE = 0x0B
ILLEGAL_FUNCTION = 0x01


class _GatewayConnection(asyncio.Protocol):
    def __init__(self, gateway: FastGatewayServer) -> None:
        self._gateway = gateway
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        rtu = gateway.framing == "rtu"
        self._split = wire.split_rtu if rtu else wire.split_tcp
        self._frame: Callable[[int, int, bytes], bytes] = wire.rtu_reply if rtu else wire.tcp_reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._gateway.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._gateway.connections.discard(self)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        requests, lost = self._split(self._buffer)
        for tid, unit, pdu in requests:
            if self._transport is None:
                return
            self._answer(tid, unit, pdu)
        if lost and self._gateway.framing == "tcp":
            self.close()  # a TCP stream without framing cannot be trusted any more

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _answer(self, tid: int, unit: int, pdu: bytes) -> None:
        gateway = self._gateway
        datastore = gateway.datastore
        endpoint = datastore.endpoint(unit)
        if endpoint is None or len(pdu) < 5:
            self._send(tid, unit, wire.exception_pdu(pdu[0] if pdu else 0, GATEWAY_NO_RESPONSE))
            return
        function = pdu[0]
        action = gateway.faults.action(endpoint.device.device_id, datastore.site_id, gateway.rng)
        delay = 0.0
        if action is not None:
            if action.drop:
                log.info("dropping connection on request to %s", endpoint.device.device_id)
                self.close()
                return
            if action.mute:
                return
            delay = action.delay_s
            if action.exception_code is not None:
                self._send_later(
                    delay, tid, unit, wire.exception_pdu(function, action.exception_code)
                )
                return
        if not 1 <= function <= 4:
            reply = wire.exception_pdu(function, ILLEGAL_FUNCTION)
        else:
            _, address, count = wire.READ_PDU.unpack_from(pdu)
            data = datastore.read_bytes(unit, function, address, count)
            if isinstance(data, int):
                reply = wire.exception_pdu(function, data)
            else:
                reply = wire.data_pdu(function, data)
        self._send_later(delay, tid, unit, reply)

    def _send_later(self, delay: float, tid: int, unit: int, pdu: bytes) -> None:
        if delay <= 0:
            self._send(tid, unit, pdu)
            return
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert timer is not None
            self._timers.discard(timer)
            self._send(tid, unit, pdu)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    def _send(self, tid: int, unit: int, pdu: bytes) -> None:
        if self._transport is not None:
            self._transport.write(self._frame(tid, unit, pdu))


class FastGatewayServer:
    """One site's endpoint (Modbus TCP or RTU over TCP framing)."""

    def __init__(
        self,
        datastore: SiteDatastore,
        faults: FaultBoard,
        host: str,
        port: int,
        rng: random.Random,
        *,
        framing: str = "tcp",
    ) -> None:
        self.datastore = datastore
        self.faults = faults
        self.rng = rng
        self.framing = framing
        self.connections: set[_GatewayConnection] = set()
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _GatewayConnection(self), self._host, self._port
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self.connections):
            connection.close()
        await server.wait_closed()

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("gateway is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port
