"""ess_sunspec: register codecs, point sentinels, model round trips, chain walk."""

from __future__ import annotations

import math

import pytest

from ess_sunspec import (
    MODELS,
    SUNS_MARKER,
    ByteOrder,
    DataType,
    SunSpecError,
    WordOrder,
    apply_scale,
    build_image,
    decode_model,
    decode_point,
    decode_value,
    encode_model,
    encode_point,
    encode_value,
    scale_factor_for,
    walk_models,
)
from ess_sunspec.model import Point, PointType
from ess_sunspec.models import BATTERY_802, COMMON_1, LITHIUM_ION_BANK_803

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("word_order", "byte_order", "expected"),
    [
        (WordOrder.BIG, ByteOrder.BIG, [0x1234, 0x5678]),
        (WordOrder.LITTLE, ByteOrder.BIG, [0x5678, 0x1234]),
        (WordOrder.BIG, ByteOrder.LITTLE, [0x3412, 0x7856]),
        (WordOrder.LITTLE, ByteOrder.LITTLE, [0x7856, 0x3412]),
    ],
)
def test_uint32_word_and_byte_orders(
    word_order: WordOrder, byte_order: ByteOrder, expected: list[int]
) -> None:
    registers = encode_value(
        DataType.UINT32, 0x12345678, word_order=word_order, byte_order=byte_order
    )
    assert registers == expected
    assert (
        decode_value(DataType.UINT32, registers, word_order=word_order, byte_order=byte_order)
        == 0x12345678
    )


@pytest.mark.parametrize("data_type", [DataType.FLOAT32, DataType.FLOAT64])
@pytest.mark.parametrize("word_order", list(WordOrder))
def test_floats_round_trip_in_both_word_orders(data_type: DataType, word_order: WordOrder) -> None:
    registers = encode_value(data_type, -1234.5, word_order=word_order)
    assert decode_value(data_type, registers, word_order=word_order) == -1234.5


def test_swapped_words_differ_from_big_endian_words() -> None:
    big = encode_value(DataType.INT32, -100_000)
    little = encode_value(DataType.INT32, -100_000, word_order=WordOrder.LITTLE)
    assert little == big[::-1]


def test_out_of_range_integer_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_value(DataType.INT16, 40_000)


def test_strings_pad_with_zeros_and_stop_at_the_first() -> None:
    registers = encode_value(DataType.STRING, "SunS", string_registers=4)
    assert registers == [0x5375, 0x6E53, 0, 0]
    assert decode_value(DataType.STRING, registers) == "SunS"


@pytest.mark.parametrize(
    ("point_type", "size", "sentinel"),
    [
        (PointType.INT16, 1, [0x8000]),
        (PointType.UINT16, 1, [0xFFFF]),
        (PointType.ENUM16, 1, [0xFFFF]),
        (PointType.SUNSSF, 1, [0x8000]),
        (PointType.ACC32, 2, [0, 0]),
        (PointType.UINT32, 2, [0xFFFF, 0xFFFF]),
        (PointType.BITFIELD32, 2, [0xFFFF, 0xFFFF]),
        (PointType.INT32, 2, [0x8000, 0]),
        (PointType.UINT64, 4, [0xFFFF] * 4),
        (PointType.FLOAT32, 2, [0x7FC0, 0]),
    ],
)
def test_not_implemented_encodes_to_the_sentinel_and_back_to_none(
    point_type: PointType, size: int, sentinel: list[int]
) -> None:
    point = Point("X", 2, point_type)
    assert point.size == size
    assert encode_point(point, None) == sentinel
    assert decode_point(point, sentinel) is None


def test_float_nan_reads_as_not_implemented() -> None:
    point = Point("X", 2, PointType.FLOAT32)
    assert decode_point(point, encode_value(DataType.FLOAT32, math.nan)) is None


def test_signed_points_round_trip_negative_values() -> None:
    point = Point("A", 2, PointType.INT16)
    assert encode_point(point, -5) == [0xFFFB]
    assert decode_point(point, [0xFFFB]) == -5


def test_point_out_of_range_is_rejected() -> None:
    with pytest.raises(SunSpecError, match="out of range"):
        encode_point(Point("A", 2, PointType.UINT16), -1)


def test_scale_factor_applies_as_power_of_ten() -> None:
    assert apply_scale(3328, -3) == 3.328
    assert apply_scale(152, 2) == 15_200.0
    assert apply_scale(None, -1) is None
    assert apply_scale(10, None) is None


def test_scale_factor_for_keeps_values_inside_16_bits() -> None:
    assert scale_factor_for(3.65, signed=False, finest=-3) == -3
    assert scale_factor_for(6_300_000, signed=True, finest=0) == 3
    assert scale_factor_for(65_534, signed=False, finest=0) == 0


@pytest.mark.parametrize(
    ("model_id", "length"),
    [(1, 66), (203, 105), (701, 153), (713, 7), (714, 18), (802, 62), (803, 26), (804, 46)],
)
def test_model_tables_have_the_published_lengths(model_id: int, length: int) -> None:
    assert MODELS[model_id].length() == length


def test_repeating_group_lengths_follow_the_published_models() -> None:
    assert LITHIUM_ION_BANK_803.group is not None
    assert LITHIUM_ION_BANK_803.group.length == 32
    assert MODELS[804].group is not None
    assert MODELS[804].group.length == 16
    assert MODELS[714].group is not None
    assert MODELS[714].group.length == 25


def test_scale_factor_points_live_in_the_fixed_block() -> None:
    for model in MODELS.values():
        names = {point.name for point in model.points}
        group_points = model.group.points if model.group else ()
        for point in (*model.points, *group_points):
            assert point.sf is None or point.sf in names


def test_model_round_trip_with_groups_and_missing_points() -> None:
    strings = [{"StrNMod": 8, "StrSoC": 500 + i, "StrA": -10 * i} for i in range(3)]
    registers = encode_model(LITHIUM_ION_BANK_803, {"SoC_SF": -1, "A_SF": 0}, strings)
    assert registers[:2] == [803, 26 + 3 * 32]
    assert registers[2] == 3  # NStr filled from the group count
    decoded = decode_model(LITHIUM_ION_BANK_803, registers)
    assert decoded.fixed["ModTmpMax"] is None  # not given -> not implemented
    assert [group["StrSoC"] for group in decoded.groups] == [500, 501, 502]
    assert decoded.scaled("StrSoC", group_index=2) == 50.2
    assert decoded.scaled("StrA", group_index=1) == -10.0


def test_unknown_point_names_are_rejected() -> None:
    with pytest.raises(SunSpecError, match="no points"):
        encode_model(BATTERY_802, {"Voltage": 1})


def test_chain_walk_finds_models_and_stops_at_the_end_marker() -> None:
    common = encode_model(COMMON_1, {"Mn": "ESS-Sim", "Md": "BMS", "SN": "1", "DA": 1})
    battery = encode_model(BATTERY_802, {"SoC": 500, "SoC_SF": -1})
    image = build_image([common, battery])
    assert tuple(image[:2]) == SUNS_MARKER
    assert image[-2:] == [0xFFFF, 0]
    headers = walk_models(image)
    assert [(h.model_id, h.offset, h.length) for h in headers] == [(1, 2, 66), (802, 70, 62)]
    decoded = decode_model(BATTERY_802, image[headers[1].offset : headers[1].end])
    assert decoded.scaled("SoC") == 50.0
    assert decode_model(COMMON_1, image[2:70]).fixed["Mn"] == "ESS-Sim"


def test_chain_walk_rejects_images_without_marker_or_end() -> None:
    with pytest.raises(SunSpecError, match="marker"):
        walk_models([0, 0, 0xFFFF, 0])
    with pytest.raises(SunSpecError, match="past the image"):
        walk_models([*SUNS_MARKER, 1, 66, 0])


def test_out_of_range_values_are_rejected_inside_models() -> None:
    with pytest.raises(SunSpecError, match="out of range"):
        encode_model(BATTERY_802, {"SoC": 70_000})
    with pytest.raises(SunSpecError, match="out of range"):
        encode_model(BATTERY_802, {"A": -40_000})
