"""The hot-path decoders equal the strict codec: SunSpec blocks decoded with one
struct call against `ess_sunspec.decode_model`, on every model the simulator
serves (values and sentinels), and register-map numbers against `decode_value`
for every type, word order and byte order."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest

from ess_collector.register_map import number_decoder
from ess_collector.sunspec_blocks import decode_model_fast
from ess_simulator.config import load_config
from ess_simulator.endpoint import DeviceEndpoint
from ess_simulator.simulator import Simulator
from ess_simulator.site_model import SiteModel
from ess_sunspec import (
    DEFAULT_BASE_ADDRESS,
    MODELS,
    ByteOrder,
    DataType,
    Point,
    PointType,
    PointValue,
    WordOrder,
    decode_model,
    decode_value,
    encode_value,
    walk_models,
)

SECONDS = (1_750_000_000, 1_750_000_137, 1_750_003_601)


def _sunspec_images() -> list[list[int]]:
    simulator = Simulator(load_config(None))
    images = []
    for site in simulator.sites:
        if site.protocol != "sunspec":
            continue
        model = SiteModel(site, simulator.config)
        for device in site.devices:
            endpoint = DeviceEndpoint(device, model, None)
            for second in SECONDS:
                for sentinel in (False, True):
                    holding = endpoint.spaces(second, sentinel).holding
                    end = DEFAULT_BASE_ADDRESS + len(holding)
                    images.append([holding[a] for a in range(DEFAULT_BASE_ADDRESS, end)])
    return images


def _without_pads(
    values: Mapping[str, PointValue | None], points: Sequence[Point]
) -> dict[str, PointValue | None]:
    pads = {p.name for p in points if p.type is PointType.PAD}
    return {k: v for k, v in values.items() if k not in pads}


def test_sunspec_blocks_decode_as_the_strict_codec() -> None:
    checked: set[int] = set()
    for image in _sunspec_images():
        for header in walk_models(image):
            model = MODELS.get(header.model_id)
            if model is None:
                continue
            registers = image[header.offset : header.end]
            strict = decode_model(model, registers)
            fast = decode_model_fast(model, registers, with_groups=True)
            assert fast.fixed == _without_pads(strict.fixed, model.points)
            group_points: Sequence[Point] = model.group.points if model.group else ()
            assert fast.groups == [_without_pads(g, group_points) for g in strict.groups]
            fixed_only = decode_model_fast(model, registers[: model.fixed_length], False)
            assert fixed_only.fixed == fast.fixed
            checked.add(header.model_id)
    assert checked >= {1, 802, 803, 804, 701, 713, 714, 203}


NUMERIC = [t for t in DataType if t is not DataType.STRING]


@pytest.mark.parametrize("data_type", NUMERIC)
def test_register_map_numbers_decode_as_decode_value(data_type: DataType) -> None:
    rng = random.Random(7)
    for word_order in WordOrder:
        for byte_order in ByteOrder:
            decode = number_decoder(data_type, word_order, byte_order)
            for _ in range(200):
                size = {"16": 1, "32": 2, "64": 4}[data_type.value[-2:]]
                registers = [rng.randrange(0x10000) for _ in range(size)]
                expected = decode_value(
                    data_type, registers, word_order=word_order, byte_order=byte_order
                )
                got = decode(registers)
                assert got == expected or (got != got and expected != expected)  # NaN
            pattern = encode_value(data_type, 1, word_order=word_order, byte_order=byte_order)
            assert decode(pattern) == 1
