"""The fast gateway's pure parts: RTU CRC and framing, packed images equal to the spaces."""

from __future__ import annotations

import struct

from ess_simulator import wire
from ess_simulator.packed_spaces import PackedSpaces
from ess_simulator.spaces import RegisterSpaces


def test_crc16_matches_the_modbus_specification_example() -> None:
    frame = bytes.fromhex("01030000000a")
    assert wire.with_crc(frame).hex() == "01030000000ac5cd"


def test_rtu_requests_are_cut_and_a_bad_crc_discards_the_buffer() -> None:
    good = wire.with_crc(bytes.fromhex("0204009c0002"))
    buffer = bytearray(good + good[:3])
    requests, lost = wire.split_rtu(buffer)
    assert requests == [(0, 2, bytes.fromhex("04009c0002"))]
    assert not lost
    assert buffer == good[:3]  # the start of the next frame waits for its rest
    noisy = bytearray(good[:-1] + b"\x00")
    assert wire.split_rtu(noisy) == ([], True)
    assert not noisy


def test_tcp_requests_are_cut_by_their_length_field() -> None:
    frame = wire.MBAP.pack(7, 0, 6, 3) + wire.READ_PDU.pack(3, 40000, 2)
    buffer = bytearray(frame * 2 + frame[:4])
    requests, lost = wire.split_tcp(buffer)
    assert [r[0] for r in requests] == [7, 7]
    assert not lost
    assert len(buffer) == 4


def test_packed_reads_equal_the_register_spaces() -> None:
    spaces = RegisterSpaces(
        coils={0: True, 1: False, 2: True},
        discrete={i: i % 3 == 0 for i in range(12)},
        holding={**{40000 + i: i * 7 for i in range(70)}, **{100 + i: 0xFFFF for i in range(4)}},
        input={0: 1, 1: 2, 5: 3},
    )
    packed = PackedSpaces(spaces)
    for function, address, count in [
        (3, 40000, 70), (3, 40010, 5), (3, 100, 4), (3, 99, 2), (3, 40065, 10),
        (4, 0, 2), (4, 0, 3), (4, 5, 1), (1, 0, 3), (1, 1, 3), (2, 0, 12), (2, 3, 9),
    ]:  # fmt: skip
        expected = spaces.read(function, address, count)
        data = packed.read(function, address, count)
        if expected is None:
            assert data is None, (function, address, count)
        elif function >= 3:
            assert data == struct.pack(f">{count}H", *expected)
        else:
            assert data is not None
            assert [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)] == expected
