"""Turning decoded readings into script calls (pure): what the Lua script reads.

One call carries up to `max_readings` readings, sorted by device so that each
bucket is read and written once for many readings, and the newest reading of
each of their devices (for `latest`). The script gets:

- ARGV[2], a JSON header (indexes are 1-based, for Lua)::

    {"now": 1764572000, "cap": 1000, "seen_tail": 90600, "lat_ttl": 604800,
     "res": [["1m", 60, 10800], ...], "width": 8, "count": 1000,
     "dev": [[device_key, site, [series...], measure count, table], ...],
     "lat": [[dev_index, slot, argv_index_of_payload], ...],
     "an":  [[reading_index, rule, value, limit], ...]}

- ARGV[3], the readings: `count` records of `<HI4` (device index, slot) then
  `width` pairs of doubles (value, quantized value) in MEASURES order; NaN
  marks a missing value and pads tables with fewer measurements;
- ARGV[4..], the latest payloads (wire JSON).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from ess_cache.decode import CacheReading
from ess_cache.rules import Anomaly
from ess_cache.window import Retention
from ess_cache_layout.keys import series_of
from ess_cache_layout.measures import MEASURES

WIDTH = max(len(ms) for ms in MEASURES.values())
READING = struct.Struct("<HI" + "d" * (2 * WIDTH))
_COUNTS = {table: len(ms) for table, ms in MEASURES.items()}
_SCALES = {table: [m.scale for m in ms] for table, ms in MEASURES.items()}
_PADDING = {table: (math.nan,) * (2 * (WIDTH - len(ms))) for table, ms in MEASURES.items()}
_NAN = math.nan


@dataclass(frozen=True)
class ScriptCall:
    header: bytes  # ARGV[2]
    readings_blob: bytes  # ARGV[3]
    payloads: list[bytes]  # ARGV[4..]
    readings: int

    @property
    def args(self) -> list[bytes]:
        return [self.header, self.readings_blob, *self.payloads]


@dataclass(frozen=True)
class PlanConfig:
    retention: Retention
    anomaly_cap: int
    latest_ttl_s: int
    max_readings: int


def plan_calls(
    items: Sequence[tuple[CacheReading, Sequence[Anomaly]]], now: int, config: PlanConfig
) -> list[ScriptCall]:
    return list(iter_calls(items, now, config))


def iter_calls(
    items: Sequence[tuple[CacheReading, Sequence[Anomaly]]], now: int, config: PlanConfig
) -> Iterator[ScriptCall]:
    # Device by device; the sort is stable, so of two copies of a slot the first still wins.
    ordered = sorted(items, key=lambda item: item[0].key)
    step = config.max_readings
    for i in range(0, len(ordered), step):
        yield _one_call(ordered[i : i + step], now, config)


def _one_call(
    items: Sequence[tuple[CacheReading, Sequence[Anomaly]]], now: int, config: PlanConfig
) -> ScriptCall:
    device_index: dict[str, int] = {}
    devices: list[list[object]] = []
    records: list[bytes] = []
    flagged: list[list[object]] = []
    newest: dict[int, CacheReading] = {}
    pack = READING.pack
    for position, (reading, anomalies) in enumerate(items, start=1):
        device = reading.device
        table = device.table
        index = device_index.get(reading.key)
        if index is None:
            index = device_index[reading.key] = len(devices) + 1
            devices.append(
                [device.key, device.site, list(series_of(device)), _COUNTS[table], table]
            )
        values: list[float] = []
        for value, scale in zip(reading.measures, _SCALES[table], strict=True):
            if value is None:
                values += (_NAN, _NAN)
            else:
                values += (value, float(round(value * scale)))
        records.append(pack(index, reading.slot, *values, *_PADDING[table]))
        flagged.extend([position, a.rule, a.value, a.limit] for a in anomalies)
        best = newest.get(index)
        if best is None or reading.slot > best.slot:
            newest[index] = reading
    header = {
        "now": now,
        "cap": config.anomaly_cap,
        "seen_tail": config.retention.seen_tail_s,
        "lat_ttl": config.latest_ttl_s,
        "res": config.retention.script_config(),
        "width": WIDTH,
        "count": len(records),
        "dev": devices,
        "lat": [[index, r.slot, 4 + i] for i, (index, r) in enumerate(newest.items())],
        "an": flagged,
    }
    return ScriptCall(
        orjson.dumps(header), b"".join(records), [r.payload for r in newest.values()], len(records)
    )
