"""Server-side Modbus framing for the fast gateway: TCP (MBAP) and RTU over TCP.

Pure functions on bytes. A request is (transaction id, unit, PDU); RTU has no
transaction id (0) and ends with a CRC-16 that is checked and added here. A
frame that cannot be cut (a bad CRC, an unknown function on RTU) makes
`split_*` return the bytes to discard, like a serial device ignoring noise.
"""

from __future__ import annotations

import struct

from pymodbus.framer import FramerRTU

MBAP = struct.Struct(">HHHB")
READ_PDU = struct.Struct(">BHH")
Request = tuple[int, int, bytes]  # transaction id, unit id, PDU


def crc16(data: bytes) -> bytes:
    """Modbus RTU CRC-16 as sent (pymodbus's, low byte first on the wire)."""
    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def with_crc(frame: bytes) -> bytes:
    return frame + crc16(frame)


def split_tcp(buffer: bytearray) -> tuple[list[Request], bool]:
    """Complete requests at the head of `buffer` (consumed); True if framing is lost."""
    requests: list[Request] = []
    while len(buffer) >= MBAP.size:
        tid, protocol, length, unit = MBAP.unpack_from(buffer)
        if protocol != 0 or not 2 <= length <= 254:
            return requests, True
        end = MBAP.size + length - 1
        if len(buffer) < end:
            break
        requests.append((tid, unit, bytes(buffer[MBAP.size : end])))
        del buffer[:end]
    return requests, False


def _rtu_length(buffer: bytearray) -> int | None:
    """Length of the RTU request at the head, None if unknown (garbage)."""
    function = buffer[1]
    if 1 <= function <= 6:
        return 8
    if function in (15, 16):
        return 9 + buffer[6] if len(buffer) >= 7 else 0
    return None


def split_rtu(buffer: bytearray) -> tuple[list[Request], bool]:
    """Like `split_tcp`; a bad CRC or unknown function discards the buffer."""
    requests: list[Request] = []
    while len(buffer) >= 2:
        length = _rtu_length(buffer)
        if length is None:
            buffer.clear()
            return requests, True
        if length == 0 or len(buffer) < length:
            break
        frame = bytes(buffer[:length])
        del buffer[:length]
        if crc16(frame[:-2]) != frame[-2:]:
            buffer.clear()
            return requests, True
        requests.append((0, frame[0], frame[1:-2]))
    return requests, False


def tcp_reply(tid: int, unit: int, pdu: bytes) -> bytes:
    return MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu


def rtu_reply(tid: int, unit: int, pdu: bytes) -> bytes:
    del tid  # RTU has no transaction id: replies go in request order
    return with_crc(bytes((unit,)) + pdu)


def data_pdu(function: int, data: bytes) -> bytes:
    return bytes((function, len(data))) + data


def exception_pdu(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))
