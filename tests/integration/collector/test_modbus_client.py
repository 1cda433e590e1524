"""The read-only client over a real TCP socket, against a server that misbehaves on cue.

Malformed replies come back as errors with a reason and leave the connection
usable; a reply that arrives after its request timed out is dropped instead of
answering the next request; a stream that loses its framing, or a peer that
closes, fails what is pending and marks the client disconnected.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from ess_collector.errors import (
    BrokenFrameError,
    ConnectionLostError,
    ExceptionReplyError,
    MalformedReplyError,
    NotConnectedError,
    RequestTimeoutError,
)
from ess_collector.modbus_client import ReadOnlyModbusClient

pytestmark = pytest.mark.timeout(30)

Script = Callable[[int, int, int, int, int], "bytes | float | None"]


def frame(tid: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def registers(tid: int, unit: int, fc: int, values: list[int]) -> bytes:
    return frame(tid, unit, struct.pack(f">BB{len(values)}H", fc, 2 * len(values), *values))


class ScriptedServer:
    """Replies to each request with what `script(tid, unit, fc, address, count)` returns:
    bytes to send, a float to wait that long and then answer normally, None to stay silent."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, _, unit, fc, address, count = struct.unpack(
                    ">HHHBBHH", await reader.readexactly(12)
                )
                answer = self.script(tid, unit, fc, address, count)
                if isinstance(answer, float):
                    asyncio.get_running_loop().call_later(
                        answer, writer.write, registers(tid, unit, fc, [address] * count)
                    )
                elif answer == b"close":
                    writer.close()
                    return
                elif answer is not None:
                    writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def normal(tid: int, unit: int, fc: int, address: int, count: int) -> bytes:
    return registers(tid, unit, fc, [address + i for i in range(count)])


ClientFor = Callable[[ScriptedServer], ReadOnlyModbusClient]


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFor]:
    clients: list[ReadOnlyModbusClient] = []

    def make(server: ScriptedServer) -> ReadOnlyModbusClient:
        client = ReadOnlyModbusClient("127.0.0.1", server.port)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_reads_come_back_from_the_right_unit_and_address(client_for: ClientFor) -> None:
    async with ScriptedServer(normal) as server:
        client = client_for(server)
        await client.connect(2.0)
        assert await client.read_holding_registers(3, 40000, 3, 1.0) == [40000, 40001, 40002]
        assert await client.read_input_registers(200, 7, 1, 1.0) == [7]


@pytest.mark.parametrize(
    ("bad_reply", "reason"),
    [
        (lambda tid, unit, fc: frame(tid, unit + 1, bytes([fc, 2, 0, 1])), "bad_unit"),
        (lambda tid, unit, fc: frame(tid, unit, bytes([fc + 1, 2, 0, 1])), "bad_function"),
        (lambda tid, unit, fc: frame(tid, unit, bytes([fc, 4, 0, 1, 0, 2])), "bad_length"),
        (lambda tid, unit, fc: frame(tid, unit, bytes([fc | 0x80, 6])), "exception_busy"),
    ],
)
async def test_a_malformed_reply_is_an_error_with_a_reason_and_the_link_survives(
    client_for: ClientFor,
    bad_reply: Callable[[int, int, int], bytes],
    reason: str,
) -> None:
    def script(tid: int, unit: int, fc: int, address: int, count: int) -> bytes:
        return bad_reply(tid, unit, fc) if address == 13 else normal(tid, unit, fc, address, count)

    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect(2.0)
        with pytest.raises((MalformedReplyError, ExceptionReplyError)) as caught:
            await client.read_holding_registers(1, 13, 1, 1.0)
        assert caught.value.reason == reason
        assert client.is_connected()
        assert await client.read_holding_registers(1, 20, 1, 1.0) == [20]


async def test_a_late_reply_is_dropped_not_taken_for_the_next_answer(client_for: ClientFor) -> None:
    def script(tid: int, unit: int, fc: int, address: int, count: int) -> bytes | float:
        return 0.3 if unit == 5 else normal(tid, unit, fc, address, count)

    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect(2.0)
        with pytest.raises(RequestTimeoutError) as caught:
            await client.read_holding_registers(5, 100, 1, 0.1)
        assert caught.value.device_silent
        await asyncio.sleep(0.4)  # the late reply arrives now
        assert await client.read_holding_registers(6, 200, 1, 1.0) == [200]
        assert client.stale_replies == 1


async def test_a_stream_that_loses_its_framing_is_closed(client_for: ClientFor) -> None:
    def script(tid: int, unit: int, fc: int, address: int, count: int) -> bytes:
        return frame(tid, unit, bytes([fc, 2, 0, 1]), protocol=7)

    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect(2.0)
        with pytest.raises(BrokenFrameError):
            await client.read_input_registers(1, 0, 1, 1.0)
        assert not client.is_connected()
        with pytest.raises(NotConnectedError):
            await client.read_input_registers(1, 0, 1, 1.0)


async def test_a_peer_that_hangs_up_fails_the_pending_request(client_for: ClientFor) -> None:
    async with ScriptedServer(lambda *_: b"close") as server:
        client = client_for(server)
        await client.connect(2.0)
        with pytest.raises(ConnectionLostError) as caught:
            await client.read_coils(1, 0, 8, 1.0)
        assert caught.value.connection_broken
        assert not client.is_connected()
        await client.connect(2.0)  # and it can connect again
        assert client.is_connected()


async def test_connecting_to_a_closed_port_fails_quickly() -> None:
    client = ReadOnlyModbusClient("127.0.0.1", 1)
    with pytest.raises(ConnectionRefusedError):
        await client.connect(2.0)
    assert not client.is_connected()
