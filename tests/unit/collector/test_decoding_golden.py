"""Decoding goldens, one folder per case (after Telegraf's modbus input tests).

Each folder holds `config.yaml` (an inventory with one device) and either
`init.err` (the exact error loading must report, file and line included) or
`registers.yaml` (what the device holds) and `expected.json` (the reading's
values, extras, quality flags and the reads planned for a poll). The device is
an in-memory Modbus server; the collector's own planning, SunSpec discovery
and decoding run unchanged.

registers.yaml holds any of `holding`, `input` (start address -> list of
registers, grouped per point if that reads better), `coil`, `discrete`
(start address -> list of bools) and `sunspec` (a base address and models
whose point values are encoded with ess_sunspec, as a device would hold
them; `patch` overwrites single registers). Reading an address nobody set
answers exception 2 (illegal data address), like a real device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ess_collector.device import Device, PollLimits
from ess_collector.errors import ExceptionReplyError, InventoryError
from ess_collector.inventory_file import parse_inventory
from ess_collector.modbus_frames import ReadFunction
from ess_collector.values import build_reading
from ess_common.backoff import Backoff
from ess_common.model import Quality
from ess_sunspec import MODELS, build_image, encode_model

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "config.yaml").is_file())
SLOT = 1_772_366_400  # 2026-03-01T12:00:00Z
LIMITS = PollLimits(request_timeout_s=0.5, max_registers=125, gap_fill=0)


def test_there_are_cases_of_every_kind() -> None:
    errors = [c for c in CASES if (GOLDEN / c / "init.err").is_file()]
    assert len(errors) >= 8
    assert len(CASES) - len(errors) >= 10


@pytest.mark.parametrize("case", CASES)
async def test_golden(case: str) -> None:
    folder = GOLDEN / case
    text = (folder / "config.yaml").read_text()
    if (folder / "init.err").is_file():
        with pytest.raises(InventoryError) as caught:
            parse_inventory(text, "config.yaml")
        assert str(caught.value) == (folder / "init.err").read_text().strip()
        return
    inventory = parse_inventory(text, "config.yaml")
    (config,) = inventory.devices()
    register_map = inventory.register_maps[config.register_map] if config.register_map else None
    device = Device(config, register_map, Backoff(1.0, 1.0))
    memory = MemoryDevice.from_file(folder / "registers.yaml")
    await device.poll(memory, LIMITS)  # SunSpec devices walk their chain in this one
    memory.requests.clear()
    result = await device.poll(memory, LIMITS)
    assert result.decoded is not None, result.errors
    reading = build_reading(device.device_id, SLOT, SLOT + 0.25, result.decoded)
    expected: dict[str, Any] = json.loads((folder / "expected.json").read_text())
    assert reading.values.model_dump(exclude_none=True) == expected["values"]
    assert reading.extras == expected["extras"]
    assert _flags(reading.quality) == expected["quality"]
    assert [[int(f), a, c] for f, a, c in memory.requests] == expected["requests"]


async def test_a_model_that_moves_under_the_collector_is_walked_again() -> None:
    folder = GOLDEN / "sunspec_pcs_701_713_714"
    inventory = parse_inventory((folder / "config.yaml").read_text(), "config.yaml")
    (config,) = inventory.devices()
    device = Device(config, None, Backoff(1.0, 1.0))
    memory = MemoryDevice.from_file(folder / "registers.yaml")
    assert (await device.poll(memory, LIMITS)).decoded is not None
    assert device.layout is not None
    dc_model = next(m for m in device.layout.models if m.model.model_id == 714)
    memory.spaces["holding"][dc_model.address] = 999  # the 714 block is now something else
    moved = await device.poll(memory, LIMITS)
    assert moved.decoded is None
    assert [e.reason for e in moved.errors] == ["decode"]
    assert device.requests == []  # the chain is walked again next time
    again = await device.poll(memory, LIMITS)
    assert again.discovered
    assert again.decoded is not None
    assert again.decoded.values["dc_power_w"] is None
    assert Quality.NOT_IMPLEMENTED in again.decoded.quality
    assert again.decoded.values["active_power_w"] == 500000.0


def _flags(quality: Quality) -> list[str]:
    return [flag.name or "" for flag in Quality if flag and flag in quality]


_SPACE_OF = {
    ReadFunction.READ_COILS: "coil",
    ReadFunction.READ_DISCRETE_INPUTS: "discrete",
    ReadFunction.READ_HOLDING_REGISTERS: "holding",
    ReadFunction.READ_INPUT_REGISTERS: "input",
}


class MemoryDevice:
    def __init__(self, spaces: Mapping[str, dict[int, int | bool]]) -> None:
        self.spaces = spaces
        self.requests: list[tuple[ReadFunction, int, int]] = []

    @classmethod
    def from_file(cls, path: Path) -> MemoryDevice:
        doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        spaces: dict[str, dict[int, int | bool]] = {s: {} for s in _SPACE_OF.values()}
        for space in ("holding", "input", "coil", "discrete"):
            for start, values in (doc.get(space) or {}).items():
                for offset, value in enumerate(_flat(values)):
                    spaces[space][int(start) + offset] = value
        if "sunspec" in doc:
            spaces["holding"].update(sunspec_registers(doc["sunspec"]))
        return cls(spaces)

    async def read(
        self, function: ReadFunction, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int] | list[bool]:
        self.requests.append((function, address, count))
        space = self.spaces[_SPACE_OF[function]]
        try:
            values = [space[a] for a in range(address, address + count)]
        except KeyError:
            raise ExceptionReplyError(2) from None
        if function.reads_bits:
            return [bool(v) for v in values]
        return [int(v) for v in values]

    async def read_holding_registers(
        self, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int]:
        values = await self.read(ReadFunction.READ_HOLDING_REGISTERS, unit, address, count, 1.0)
        return [int(v) for v in values]


def _flat(values: list[Any]) -> list[int | bool]:
    """Registers may be grouped per point: [0x1, [0x2, 0x3], 0x4] -> [0x1, 0x2, 0x3, 0x4]."""
    flat: list[int | bool] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


def sunspec_registers(spec: Mapping[str, Any]) -> dict[int, int]:
    """Address -> register of a SunSpec image: marker, models, end model."""
    blocks = [
        encode_model(MODELS[m["id"]], m.get("values", {}), m.get("groups", []))
        for m in spec["models"]
    ]
    image = build_image(blocks)
    base = int(spec.get("base", 40000))
    registers = dict(zip(range(base, base + len(image)), image, strict=True))
    for address, value in (spec.get("patch") or {}).items():
        registers[int(address)] = int(value)
    return registers
