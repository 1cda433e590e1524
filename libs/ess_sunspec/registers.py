"""Register value codecs shared by SunSpec models and vendor register maps.

Pure functions between one value and its 16-bit Modbus registers, for a data
type and the two orders devices disagree on: the order of the words across
registers and the order of the bytes inside one register.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum


class WordOrder(StrEnum):
    """Order of the 16-bit words of a multi-register value."""

    BIG = "big"  # most significant word first: AB CD
    LITTLE = "little"  # least significant word first ("swapped words"): CD AB


class ByteOrder(StrEnum):
    """Order of the two bytes inside each register."""

    BIG = "big"  # Modbus standard: high byte first
    LITTLE = "little"  # swapped bytes: BA DC


class DataType(StrEnum):
    """Value types a register map can declare."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


_STRUCT_CODES: dict[DataType, tuple[str, int]] = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.INT64: ("q", 4),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT32: ("f", 2),
    DataType.FLOAT64: ("d", 4),
}

Value = int | float | str


def register_count(data_type: DataType, string_registers: int = 0) -> int:
    """Registers one value occupies; strings take their declared length."""
    if data_type == DataType.STRING:
        if string_registers < 1:
            raise ValueError("a string needs a register count of at least 1")
        return string_registers
    return _STRUCT_CODES[data_type][1]


def _words_from_bytes(data: bytes, word_order: WordOrder, byte_order: ByteOrder) -> list[int]:
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == WordOrder.LITTLE:
        words.reverse()
    if byte_order == ByteOrder.LITTLE:
        words = [word[::-1] for word in words]
    return [int.from_bytes(word, "big") for word in words]


def _bytes_from_words(
    registers: Sequence[int], word_order: WordOrder, byte_order: ByteOrder
) -> bytes:
    words = [register.to_bytes(2, "big") for register in registers]
    if byte_order == ByteOrder.LITTLE:
        words = [word[::-1] for word in words]
    if word_order == WordOrder.LITTLE:
        words.reverse()
    return b"".join(words)


def encode_value(
    data_type: DataType,
    value: Value,
    *,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
    string_registers: int = 0,
) -> list[int]:
    """Registers holding `value`; integers out of range raise ValueError."""
    if data_type == DataType.STRING:
        count = register_count(data_type, string_registers)
        raw = str(value).encode("utf-8")[: 2 * count].ljust(2 * count, b"\0")
        # Word order means nothing for text: characters always run forward.
        return _words_from_bytes(raw, WordOrder.BIG, byte_order)
    code, _ = _STRUCT_CODES[data_type]
    number: int | float = float(value) if code in "fd" else int(value)
    try:
        raw = struct.pack(">" + code, number)
    except struct.error as exc:
        raise ValueError(f"{value!r} does not fit {data_type.value}") from exc
    return _words_from_bytes(raw, word_order, byte_order)


def decode_value(
    data_type: DataType,
    registers: Sequence[int],
    *,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
) -> Value:
    """Value held by `registers` (exactly the registers of one value)."""
    if data_type == DataType.STRING:
        raw = _bytes_from_words(registers, WordOrder.BIG, byte_order)
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    code, size = _STRUCT_CODES[data_type]
    if len(registers) != size:
        raise ValueError(f"{data_type.value} needs {size} registers, got {len(registers)}")
    raw = _bytes_from_words(registers, word_order, byte_order)
    result: int | float = struct.unpack(">" + code, raw)[0]
    return result
