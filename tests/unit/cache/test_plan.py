"""What Python hands the Lua script: binary records that decode back to the readings."""

from __future__ import annotations

import math
import struct

import orjson

from ess_cache.decode import CacheReading
from ess_cache.plan import READING, WIDTH, PlanConfig, plan_calls
from ess_cache.rules import Anomaly
from ess_cache.window import Retention
from ess_cache_layout.aggregate import quantize
from ess_cache_layout.measures import MEASURES
from ess_common.model import DeviceId

CONFIG = PlanConfig(Retention({"1m": 60, "15m": 60, "1h": 60, "1d": 60}, 1, 3600), 100, 600, 3)
RACK = DeviceId(table="rack", site="s1", bank=1, rack=1)
PCS = DeviceId(table="pcs", site="s1", unit=1)


def _reading(device: DeviceId, slot: int, value: float | None) -> CacheReading:
    n = len(MEASURES[device.table])
    return CacheReading(
        device, device.key, slot, (value,) * n, f"payload {device.key} {slot}".encode()
    )


def test_calls_carry_sorted_readings_their_quantized_values_and_the_newest_payloads() -> None:
    items = [
        (_reading(RACK, 101, 3.2528762221270453), []),
        (_reading(PCS, 100, 0.25), [Anomaly(PCS.key, 100, "soc_jump", 7.5, 5.0)]),
        (_reading(RACK, 100, None), []),
        (_reading(PCS, 102, 1.0), []),
    ]
    calls = plan_calls(items, now=1000, config=CONFIG)
    assert [c.readings for c in calls] == [3, 1]  # max_readings = 3
    header = orjson.loads(calls[0].header)
    assert [d[0] for d in header["dev"]] == ["s1/bank1/rack1", "s1/pcs1"]  # sorted by device
    records = [READING.unpack_from(calls[0].readings_blob, i * READING.size) for i in range(3)]
    rack_101 = records[0]  # the sort is stable: a device's readings keep their arrival order
    assert rack_101[:2] == (1, 101)
    assert rack_101[2] == 3.2528762221270453
    assert rack_101[3] == quantize(3.2528762221270453, MEASURES["rack"][0].decimals)
    assert records[1][:2] == (1, 100)
    assert all(math.isnan(v) for v in records[1][2:])  # the rack at 100 had no values
    assert all(math.isnan(v) for v in records[2][2 + 2 * len(MEASURES["pcs"]) :])  # padding
    assert len(records[2]) == 2 + 2 * WIDTH
    # The first call's pcs reading (slot 100) carries its anomaly at its position.
    assert header["an"] == [[3, "soc_jump", 7.5, 5.0]]
    # Latest: the newest reading of each device in the call, payload passed as ARGV[4..].
    assert header["lat"] == [[1, 101, 4], [2, 100, 5]]
    assert calls[0].payloads == [b"payload s1/bank1/rack1 101", b"payload s1/pcs1 100"]
    assert struct.calcsize("<HI") == 6
