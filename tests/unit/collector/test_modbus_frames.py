"""Modbus TCP and RTU frames of the four read functions, and every way a reply can be wrong."""

from __future__ import annotations

import pytest

from ess_collector.errors import BrokenFrameError, ExceptionReplyError, MalformedReplyError
from ess_collector.modbus_frames import (
    ReadFunction,
    crc16,
    decode_read_reply,
    encode_read_request,
    encode_rtu_read_request,
    parse_header,
    parse_rtu_reply,
    rtu_reply_length,
)


def test_a_read_request_is_mbap_header_plus_pdu() -> None:
    frame = encode_read_request(0x0102, 17, ReadFunction.READ_HOLDING_REGISTERS, 40000, 125)
    # tid 0x0102, protocol 0, length 6, unit 17 | fc 3, address 0x9C40, count 0x7D
    assert frame == bytes.fromhex("0102 0000 0006 11 03 9C40 007D")


@pytest.mark.parametrize(
    ("function", "quantity"),
    [
        (ReadFunction.READ_HOLDING_REGISTERS, 126),
        (ReadFunction.READ_INPUT_REGISTERS, 0),
        (ReadFunction.READ_COILS, 2001),
    ],
)
def test_quantities_beyond_the_protocol_limits_are_refused(
    function: ReadFunction, quantity: int
) -> None:
    with pytest.raises(ValueError, match="quantity"):
        encode_read_request(1, 1, function, 0, quantity)


def test_a_read_may_not_run_past_the_address_space() -> None:
    with pytest.raises(ValueError, match="address"):
        encode_read_request(1, 1, ReadFunction.READ_INPUT_REGISTERS, 65535, 2)


def test_register_and_bit_replies_decode() -> None:
    registers = decode_read_reply(
        ReadFunction.READ_INPUT_REGISTERS, 2, bytes.fromhex("04 04 0102 FFFF")
    )
    assert registers == [0x0102, 0xFFFF]
    bits = decode_read_reply(ReadFunction.READ_COILS, 10, bytes.fromhex("01 02 05 02"))
    assert bits == [True, False, True, False, False, False, False, False, False, True]


def test_an_exception_reply_names_its_code() -> None:
    with pytest.raises(ExceptionReplyError) as caught:
        decode_read_reply(ReadFunction.READ_HOLDING_REGISTERS, 1, bytes.fromhex("83 02"))
    assert caught.value.code == 2
    assert caught.value.reason == "exception_illegal_address"
    assert not caught.value.connection_broken
    with pytest.raises(ExceptionReplyError) as unknown:
        decode_read_reply(ReadFunction.READ_HOLDING_REGISTERS, 1, bytes.fromhex("83 42"))
    assert unknown.value.reason == "exception_other"


@pytest.mark.parametrize(
    ("function", "quantity", "pdu", "reason"),
    [
        (ReadFunction.READ_HOLDING_REGISTERS, 1, "04 02 0001", "bad_function"),
        (ReadFunction.READ_HOLDING_REGISTERS, 2, "03 02 0001", "bad_length"),
        (ReadFunction.READ_HOLDING_REGISTERS, 1, "03 04 0001", "bad_length"),
        (ReadFunction.READ_COILS, 9, "01 01 FF", "bad_length"),
        (ReadFunction.READ_INPUT_REGISTERS, 1, "", "bad_length"),
    ],
)
def test_malformed_replies_are_refused_with_a_reason(
    function: ReadFunction, quantity: int, pdu: str, reason: str
) -> None:
    with pytest.raises(MalformedReplyError) as caught:
        decode_read_reply(function, quantity, bytes.fromhex(pdu))
    assert caught.value.reason == reason


def test_a_header_that_cannot_be_modbus_breaks_the_frame() -> None:
    assert parse_header(bytes.fromhex("0007 0000 0005 09")) == (7, 9, 4)
    with pytest.raises(BrokenFrameError):
        parse_header(bytes.fromhex("0007 0001 0005 09"))  # protocol id 1
    with pytest.raises(BrokenFrameError):
        parse_header(bytes.fromhex("0007 0000 0400 09"))  # 1024-byte PDU
    with pytest.raises(BrokenFrameError) as caught:
        parse_header(bytes.fromhex("0007 0000 0001 09"))  # no room for a function code
    assert caught.value.connection_broken


def test_an_rtu_request_is_unit_pdu_and_crc() -> None:
    frame = encode_rtu_read_request(1, ReadFunction.READ_HOLDING_REGISTERS, 0, 10)
    assert frame == bytes.fromhex("01 03 0000 000A C5CD")  # the specification's example


def test_an_rtu_reply_is_cut_by_its_byte_count_and_checked_by_its_crc() -> None:
    body = bytes.fromhex("11 03 04 0001 0002")
    frame = body + crc16(body).to_bytes(2, "little")
    assert rtu_reply_length(frame[:3]) == len(frame)
    assert parse_rtu_reply(frame) == (0x11, bytes.fromhex("03 04 0001 0002"))
    assert decode_read_reply(ReadFunction.READ_HOLDING_REGISTERS, 2, frame[1:-2]) == [1, 2]
    exception = bytes.fromhex("11 83 02")
    assert rtu_reply_length(exception) == 5
    with pytest.raises(BrokenFrameError):
        parse_rtu_reply(frame[:-1] + bytes([frame[-1] ^ 1]))
