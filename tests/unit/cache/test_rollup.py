"""Rolling minute rows up (the rebuild) gives what folding each reading gives (the stream)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from ess_cache.rollup import MinuteRow, Rollup, hour_segments
from ess_cache.window import Retention
from ess_cache_layout.aggregate import Agg, Bucket, aggregate_values, merge_into, quantize
from ess_cache_layout.keys import series_of
from ess_cache_layout.measures import RESOLUTIONS, bucket_start
from ess_common.model import DeviceId, Reading
from ess_common.synthetic import Fleet, readings

T0 = int(datetime(2026, 3, 1, 9, 58, 30, tzinfo=UTC).timestamp())
RETENTION = Retention({"1m": 10**9, "15m": 10**9, "1h": 10**9, "1d": 10**9}, 1, 3600)
RACK = DeviceId(table="rack", site="s1", bank=1, rack=1)


def _fleet_readings() -> list[Reading]:
    fleet = Fleet({"s1": {1: 3, 2: 2}, "s2": {1: 2}})
    return list(readings(fleet, datetime.fromtimestamp(T0, UTC), seconds=150))


def _one(r: Reading) -> tuple[int, Bucket]:
    slot = int(r.ts.timestamp())
    return slot, aggregate_values(r.table, [(slot, r.values.model_dump())])


def test_minute_rows_roll_up_to_the_buckets_the_stream_builds() -> None:
    items = _fleet_readings()
    # What the stream builds: every reading folded into every series and resolution.
    stream: dict[tuple[str, str, int], Bucket] = defaultdict(dict)
    for r in items:
        slot, one = _one(r)
        for res in RESOLUTIONS:
            for series in series_of(r.device):
                merge_into(stream[(res.name, series, bucket_start(slot, res.seconds))], one)
    # What the rebuild builds: per device and minute first (as the SQL), then rolled up.
    minutes: dict[tuple[DeviceId, int], tuple[int, Bucket]] = {}
    for r in items:
        slot, one = _one(r)
        minute = bucket_start(slot, 60)
        mask, bucket = minutes.get((r.device, minute), (0, {}))
        merge_into(bucket, one)
        minutes[(r.device, minute)] = (mask | 1 << (slot - minute), bucket)
    rollup = Rollup(RETENTION)
    for (device, minute), (mask, bucket) in minutes.items():
        rollup.add(MinuteRow(device, minute, mask, bucket))
    rebuilt = {(w.resolution, w.series, w.start): w.bucket for w in rollup.pop_all()}
    assert rebuilt == dict(stream)
    assert ("15m", "bank:s1/bank1", bucket_start(T0, 900)) in rebuilt


def test_closed_buckets_are_popped_once_and_open_ones_wait() -> None:
    rollup = Rollup(RETENTION)
    minute = bucket_start(T0, 60)
    rollup.add(MinuteRow(RACK, minute, 1, {"soc": Agg.of(50.0, quantize(50.0, 3), minute)}))
    closed = rollup.pop_closed(minute + 60)
    assert {w.resolution for w in closed} == {"1m"}
    assert {w.series for w in closed} == {"dev:s1/bank1/rack1", "bank:s1/bank1", "site:s1:rack"}
    assert rollup.pop_closed(minute + 60) == []
    assert {w.resolution for w in rollup.pop_all()} == {"15m", "1h", "1d"}


def test_hour_segments_set_the_bits_setbit_would_set() -> None:
    hour = 1_796_104_800  # an hour boundary
    slots = [0, 1, 59, 60, 61, 3599, 1234]
    rows: dict[int, int] = defaultdict(int)
    for s in slots:
        rows[hour + s - s % 60] |= 1 << (s % 60)
    segments = hour_segments([MinuteRow(RACK, m, mask, {}) for m, mask in rows.items()], hour)
    # SETBIT on an empty string: bit 0 is the most significant bit of byte 0.
    expected = bytearray(max(slots) // 8 + 1)
    for s in slots:
        expected[s // 8] |= 0x80 >> (s % 8)
    assert segments == {RACK.key: bytes(expected)}
