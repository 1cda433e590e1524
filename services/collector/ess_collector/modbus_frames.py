"""Modbus framing for the four read functions, as pure functions.

Modbus TCP: an MBAP header (transaction id, protocol 0, length, unit id)
followed by a PDU (function code, start address, quantity). RTU over TCP (a
serial-to-Ethernet gateway passing RTU frames through): unit id, PDU, CRC-16;
no transaction id, so replies come in request order. Only the read
functions 1-4 exist here: the collector never writes to a device.
Every way a reply can be wrong raises a `ModbusError` whose `reason` is a
short, bounded code used as a metric label.
"""

from __future__ import annotations

import enum
import functools
import struct

from ess_collector.errors import BrokenFrameError, ExceptionReplyError, MalformedReplyError

MBAP_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
READ_REQUEST_PDU = struct.Struct(">BHH")  # function code, start address, quantity
MBAP_HEADER_SIZE = MBAP_HEADER.size
MAX_PDU_SIZE = 253
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000


class ReadFunction(enum.IntEnum):
    """The Modbus read function codes, the only ones the collector sends."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4

    @property
    def reads_bits(self) -> bool:
        return self in (ReadFunction.READ_COILS, ReadFunction.READ_DISCRETE_INPUTS)

    @property
    def max_quantity(self) -> int:
        return MAX_BITS_PER_READ if self.reads_bits else MAX_REGISTERS_PER_READ


_READ_FRAME = struct.Struct(">HHHBBHH")  # MBAP header + read PDU, packed in one call
_MAX_QUANTITY = {f: f.max_quantity for f in ReadFunction}  # enum properties are not free


def encode_read_request(
    transaction_id: int, unit: int, function: ReadFunction, address: int, quantity: int
) -> bytes:
    """One complete Modbus TCP frame asking for `quantity` items from `address`."""
    limit = _MAX_QUANTITY[function]
    if not 1 <= quantity <= limit:
        raise ValueError(f"quantity {quantity} outside 1..{limit}")
    if not 0 <= address <= 0xFFFF or address + quantity > 0x10000:
        raise ValueError(f"address range {address}+{quantity} outside the 16-bit space")
    pdu_length = READ_REQUEST_PDU.size + 1
    return _READ_FRAME.pack(
        transaction_id & 0xFFFF, 0, pdu_length, unit, function, address, quantity
    )


def encode_rtu_read_request(
    unit: int, function: ReadFunction, address: int, quantity: int
) -> bytes:
    """One RTU frame (unit, PDU, CRC) asking for `quantity` items from `address`."""
    frame = encode_read_request(0, unit, function, address, quantity)[MBAP_HEADER_SIZE - 1 :]
    return frame + crc16(frame).to_bytes(2, "little")


RTU_MIN_REPLY = 5  # unit, function | 0x80, exception code, CRC


def rtu_reply_length(head: bytes | bytearray) -> int:
    """Length of the RTU reply starting `head` (at least 3 bytes of it)."""
    if head[1] & 0x80:
        return RTU_MIN_REPLY
    return 3 + head[2] + 2


def parse_rtu_reply(frame: bytes) -> tuple[int, bytes]:
    """(unit id, PDU) of a complete RTU reply; a bad CRC means the stream is lost."""
    if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
        raise BrokenFrameError("RTU reply with a bad CRC")
    return frame[0], frame[1:-2]


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def parse_header(header: bytes | bytearray) -> tuple[int, int, int]:
    """(transaction id, unit id, PDU length) of a reply header.

    A header that cannot be right means the byte stream has lost its framing:
    nothing after it can be trusted, so the connection has to be closed.
    """
    transaction_id, protocol, length, unit = MBAP_HEADER.unpack_from(header)
    if protocol != 0:
        raise BrokenFrameError(f"protocol id {protocol}, expected 0")
    if not 2 <= length <= MAX_PDU_SIZE + 1:
        raise BrokenFrameError(f"length field {length} outside 2..{MAX_PDU_SIZE + 1}")
    return transaction_id, unit, length - 1


def decode_read_reply(function: ReadFunction, quantity: int, pdu: bytes) -> list[int] | list[bool]:
    """The registers (ints) or bits (bools) a reply PDU carries for a request."""
    if not pdu:
        raise MalformedReplyError("bad_length", "empty PDU")
    if pdu[0] == function | 0x80:
        code = pdu[1] if len(pdu) > 1 else 0
        raise ExceptionReplyError(code)
    if pdu[0] != function:
        raise MalformedReplyError("bad_function", f"function {pdu[0]} in reply to {int(function)}")
    if len(pdu) < 2 or len(pdu) != 2 + pdu[1]:
        raise MalformedReplyError("bad_length", f"byte count does not match a {len(pdu)}-byte PDU")
    data = pdu[2:]
    if function <= ReadFunction.READ_DISCRETE_INPUTS:  # coils and discrete inputs: bits
        if len(data) != (quantity + 7) // 8:
            raise MalformedReplyError("bad_length", f"{len(data)} bytes for {quantity} bits")
        return [bool(data[i // 8] >> (i % 8) & 1) for i in range(quantity)]
    if len(data) != 2 * quantity:
        raise MalformedReplyError("bad_length", f"{len(data)} bytes for {quantity} registers")
    return list(_registers_struct(quantity).unpack(data))


@functools.cache
def _registers_struct(quantity: int) -> struct.Struct:
    return struct.Struct(f">{quantity}H")
