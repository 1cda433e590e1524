"""A vendor-protocol device's registers, coils and discrete inputs, from a
reading and the vendor map; and the reverse, for checking what a client reads.

Sentinel mode writes each numeric type's "not implemented" pattern (0x8000,
0xFFFF, 0x80000000, 0xFFFFFFFF, NaN) in the point's own word and byte order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ess_simulator import events
from ess_simulator.readings import (
    CHARGE_STATUS_CHARGING,
    CHARGE_STATUS_DISCHARGING,
    BankReading,
    FieldValue,
    MeterReading,
    PcsReading,
    RackReading,
    Reading,
    flat_fields,
)
from ess_simulator.spaces import RegisterSpaces
from ess_simulator.sunspec_image import serial_number
from ess_simulator.topology import DevicePlan
from ess_simulator.vendor_map import Space, VendorPoint
from ess_sunspec import DataType, decode_value, encode_value

SENTINELS: dict[DataType, int | float] = {
    DataType.INT16: -0x8000,
    DataType.UINT16: 0xFFFF,
    DataType.INT32: -0x8000_0000,
    DataType.UINT32: 0xFFFF_FFFF,
    DataType.INT64: -0x8000_0000_0000_0000,
    DataType.UINT64: 0xFFFF_FFFF_FFFF_FFFF,
    DataType.FLOAT32: math.nan,
    DataType.FLOAT64: math.nan,
}
_INT_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-0x8000, 0x7FFF),
    DataType.UINT16: (0, 0xFFFF),
    DataType.INT32: (-0x8000_0000, 0x7FFF_FFFF),
    DataType.UINT32: (0, 0xFFFF_FFFF),
    DataType.INT64: (-(1 << 63), (1 << 63) - 1),
    DataType.UINT64: (0, (1 << 64) - 1),
}
RACK_CURRENT_BAND_A = 1.0  # below this a rack counts as idle


def device_fields(device: DevicePlan, reading: Reading) -> dict[str, FieldValue]:
    """Reading fields plus the derived status flags and identity a map may use."""
    values = flat_fields(reading)
    values["serial_number"] = serial_number(device.device_id)
    values["unit_id"] = device.unit_id
    if isinstance(reading, BankReading | RackReading):
        values["warning_active"] = bool(reading.event_bits & events.BATTERY_WARNING_MASK)
        values["alarm_active"] = bool(reading.event_bits & events.BATTERY_ALARM_MASK)
    if isinstance(reading, BankReading):
        values["charging"] = reading.charge_status == CHARGE_STATUS_CHARGING
        values["discharging"] = reading.charge_status == CHARGE_STATUS_DISCHARGING
        values["all_contactors_closed"] = reading.racks_connected == len(reading.racks)
    elif isinstance(reading, RackReading):
        values["charging"] = reading.current_a < -RACK_CURRENT_BAND_A
        values["discharging"] = reading.current_a > RACK_CURRENT_BAND_A
    elif isinstance(reading, PcsReading):
        values["alarm_active"] = reading.alarm_bits != 0
    elif isinstance(reading, MeterReading):
        values["event_active"] = reading.event_bits != 0
    return values


def _raw_number(point: VendorPoint, data_type: DataType, value: FieldValue) -> int | float:
    number = (float(value or 0) - point.offset) / point.scale
    if data_type in _INT_RANGES:
        low, high = _INT_RANGES[data_type]
        return min(max(round(number), low), high)  # a real device saturates
    return number


def encode_point_registers(point: VendorPoint, value: FieldValue, sentinel: bool) -> list[int]:
    """Registers of a numeric or string point."""
    data_type = point.data_type
    assert data_type is not None
    if data_type is DataType.STRING:
        text = "" if sentinel or value is None else str(value)
        return encode_value(
            data_type, text, byte_order=point.byte_order, string_registers=point.registers or 0
        )
    raw = (
        SENTINELS[data_type] if sentinel or value is None else _raw_number(point, data_type, value)
    )
    return encode_value(data_type, raw, word_order=point.word_order, byte_order=point.byte_order)


def vendor_spaces(
    device: DevicePlan, reading: Reading, points: Sequence[VendorPoint], sentinel: bool
) -> RegisterSpaces:
    """All spaces of a vendor-protocol device at one moment."""
    values = device_fields(device, reading)
    spaces = RegisterSpaces()
    for point in points:
        value = values[point.field]
        if point.space is Space.COIL or point.space is Space.DISCRETE:
            bits = spaces.coils if point.space is Space.COIL else spaces.discrete
            bits[point.address] = bool(value)
            continue
        registers = spaces.holding if point.space is Space.HOLDING else spaces.input
        if point.type == "bit":
            assert point.bit is not None
            flag = (1 << point.bit) if value else 0
            registers[point.address] = registers.get(point.address, 0) | flag
            continue
        for index, register in enumerate(encode_point_registers(point, value, sentinel)):
            registers[point.address + index] = register
    return spaces


def decode_vendor_point(
    point: VendorPoint, raw: Sequence[int] | Sequence[bool]
) -> float | int | str | bool | None:
    """Physical value of a point from what a client read (None = sentinel)."""
    if point.type == "bit":
        if point.space is Space.COIL or point.space is Space.DISCRETE:
            return bool(raw[0])
        assert point.bit is not None
        return bool(int(raw[0]) >> point.bit & 1)
    data_type = point.data_type
    assert data_type is not None
    registers = [int(register) for register in raw]
    value = decode_value(
        data_type, registers, word_order=point.word_order, byte_order=point.byte_order
    )
    if isinstance(value, str):
        return value
    if data_type in SENTINELS and (
        value == SENTINELS[data_type] or (isinstance(value, float) and math.isnan(value))
    ):
        return None
    if isinstance(value, int) and point.scale == 1.0 and point.offset == 0.0:
        return value
    # Rounding hides binary noise (691 * 0.1 -> 69.10000000000001), not precision.
    return round(value * point.scale + point.offset, 9)
