"""A device's spaces packed once per second as reply bytes, served by slicing.

The fast gateway answers a read with one slice of a contiguous run of
registers (big-endian words, as on the wire) instead of one dict look-up per
register: packing costs once per device and second, a read costs a slice.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass

from ess_simulator.spaces import RegisterSpaces


@dataclass(frozen=True, slots=True)
class _Runs:
    """Contiguous runs of one space: starts (sorted), ends and packed data."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    data: tuple[bytes, ...]  # registers: 2 bytes per address; bits: 1 byte (0/1) each

    def slice(self, address: int, count: int, width: int) -> bytes | None:
        index = bisect_right(self.starts, address) - 1
        if index < 0 or address + count > self.ends[index]:
            return None
        offset = (address - self.starts[index]) * width
        return self.data[index][offset : offset + count * width]


def _runs(values: dict[int, int] | dict[int, bool], registers: bool) -> _Runs:
    starts: list[int] = []
    ends: list[int] = []
    chunks: list[bytes] = []
    run: list[int] = []
    for address in sorted(values):
        if run and address != ends[-1]:
            chunks.append(_pack(run, registers))
            run = []
        if not run:
            starts.append(address)
            ends.append(address)
        run.append(int(values[address]))
        ends[-1] = address + 1
    if run:
        chunks.append(_pack(run, registers))
    return _Runs(tuple(starts), tuple(ends), tuple(chunks))


def _pack(values: list[int], registers: bool) -> bytes:
    return struct.pack(f">{len(values)}H", *values) if registers else bytes(values)


class PackedSpaces:
    """Read replies' data bytes of one device at one second."""

    __slots__ = ("_bits", "_registers")

    def __init__(self, spaces: RegisterSpaces) -> None:
        self._bits = {1: _runs(spaces.coils, False), 2: _runs(spaces.discrete, False)}
        self._registers = {3: _runs(spaces.holding, True), 4: _runs(spaces.input, True)}

    def read(self, function_code: int, address: int, count: int) -> bytes | None:
        """The data bytes of a read reply (registers big-endian, bits packed LSB
        first), or None when any address is not served."""
        runs = self._registers.get(function_code)
        if runs is not None:
            return runs.slice(address, count, 2)
        bits = self._bits[function_code].slice(address, count, 1)
        return None if bits is None else pack_bits(bits)


def pack_bits(flags: bytes) -> bytes:
    """One 0/1 byte per bit to Modbus's bit packing (LSB of the first byte first)."""
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)
