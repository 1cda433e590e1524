"""Which slots reached Kafka: per (table, device) bitsets in fixed blocks, pure.

The detector feeds every telemetry message through `light_slot` (device from
the key, `ts` found in the value without decoding the whole reading) into a
`SlotTracker`. Memory is bounded by what is kept: blocks are dropped once
every window in them has been evaluated (`drop_blocks_before`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import orjson

from ess_common.model import DeviceId, Table

_TS_MARK = b'"ts":"'


@functools.lru_cache(maxsize=4096)
def _day_epoch(day: bytes) -> int:
    d = date.fromisoformat(day.decode())
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def light_slot(value: bytes | None) -> int | None:
    """The reading's slot (`ts`) in epoch seconds, or None when it is not a reading.

    Fast path for the encoder's own form `"ts":"YYYY-MM-DDTHH:MM:SSZ"`; anything
    else is parsed fully, and a value without a whole-second, zoned `ts` is None.
    """
    if not value:
        return None
    i = value.find(_TS_MARK)
    if i >= 0:
        s = value[i + 6 : i + 26]
        if len(s) == 20 and s[19:20] == b"Z" and s[10:11] == b"T":
            try:
                return (
                    _day_epoch(s[:10]) + int(s[11:13]) * 3600 + int(s[14:16]) * 60 + int(s[17:19])
                )
            except ValueError:
                return None
    return _slow_slot(value)


def _slow_slot(value: bytes) -> int | None:
    try:
        doc = orjson.loads(value)
        ts = datetime.fromisoformat(doc["ts"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if ts.tzinfo is None or ts.microsecond:
        return None
    return int(ts.timestamp())


def record_slot(
    tracker: SlotTracker, table: Table, key: bytes | None, value: bytes | None
) -> tuple[str, int] | None:
    """(device, slot) of one telemetry record of `table`; None when it is not a valid reading."""
    slot = light_slot(value)
    device = key.decode(errors="replace") if key else ""
    if slot is None or not tracker.device_is_valid(table, device):
        return None
    return device, slot


@dataclass
class _Block:
    devices: dict[str, bytearray] = field(default_factory=dict)


class SlotTracker:
    """Seen slots per table and device, in aligned blocks of `block_s` seconds."""

    def __init__(self, block_s: int, touch_s: int) -> None:
        if block_s % touch_s:
            raise ValueError("block_s must be a multiple of touch_s")
        self.block_s = block_s
        self.touch_s = touch_s
        self._blocks: dict[tuple[Table, int], _Block] = {}
        # (table, start of a touch_s-long slice) -> when a new slot last arrived in it
        self.touched: dict[tuple[Table, int], float] = {}
        # (table, device) -> [first, last] slot seen, for who is expected in a window
        self._seen_span: dict[tuple[Table, str], list[int]] = {}
        self._valid_keys: dict[str, str] = {}

    def device_is_valid(self, table: Table, device: str) -> bool:
        """Whether `device` is a well-formed key of a `table` device (cached)."""
        known = self._valid_keys.get(device)
        if known is None:
            try:
                known = DeviceId.parse(device).table
            except ValueError:
                known = "invalid"
            if len(self._valid_keys) < 1_000_000:
                self._valid_keys[device] = known
        return known == table

    def add(self, table: Table, device: str, slot_s: int, now: float) -> bool:
        """Record one slot; True when it was new."""
        offset = slot_s % self.block_s
        key = (table, slot_s - offset)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = _Block()
        bits = block.devices.get(device)
        if bits is None:
            bits = block.devices[device] = bytearray((self.block_s + 7) // 8)
        mask = 1 << (offset & 7)
        if bits[offset >> 3] & mask:
            return False
        bits[offset >> 3] |= mask
        span = self._seen_span.get((table, device))
        if span is None:
            self._seen_span[(table, device)] = [slot_s, slot_s]
        elif slot_s < span[0]:
            span[0] = slot_s
        elif slot_s > span[1]:
            span[1] = slot_s
        self.touched[(table, slot_s - slot_s % self.touch_s)] = now
        return True

    def bits(self, table: Table, device: str, start_s: int, end_s: int) -> int:
        """Seen slots of `[start_s, end_s)` as bits relative to `start_s`."""
        out = 0
        cursor = start_s
        while cursor < end_s:
            block_start = cursor - cursor % self.block_s
            stop = min(end_s, block_start + self.block_s)
            block = self._blocks.get((table, block_start))
            raw = block.devices.get(device) if block else None
            if raw is not None:
                lo, hi = cursor - block_start, stop - block_start
                chunk = int.from_bytes(raw[lo >> 3 : (hi + 7) >> 3], "little") >> (lo & 7)
                out |= (chunk & ((1 << (hi - lo)) - 1)) << (cursor - start_s)
            cursor = stop
        return out

    def devices(self, table: Table, start_s: int, end_s: int) -> set[str]:
        """Devices with at least one block overlapping `[start_s, end_s)`."""
        found: set[str] = set()
        first = start_s - start_s % self.block_s
        for block_start in range(first, end_s, self.block_s):
            block = self._blocks.get((table, block_start))
            if block:
                found.update(block.devices)
        return found

    def expected_devices(
        self, table: Table, start_s: int, end_s: int, silent_for_s: int
    ) -> set[str]:
        """Devices expected in `[start_s, end_s)`: first seen before its end, and heard
        from at most `silent_for_s` before its start (a device silent for longer is
        taken as decommissioned, a device first seen later as not yet installed)."""
        return {
            device
            for (t, device), (first, last) in self._seen_span.items()
            if t == table and first < end_s and last >= start_s - silent_for_s
        }

    def touched_slices(self, tables: Iterable[Table]) -> list[tuple[Table, int, float]]:
        wanted = set(tables)
        return [(t, s, at) for (t, s), at in self.touched.items() if t in wanted]

    def drop_blocks_before(self, cutoff_s: int) -> int:
        """Forget blocks that end at or before `cutoff_s`; returns how many."""
        old = [k for k in self._blocks if k[1] + self.block_s <= cutoff_s]
        for k in old:
            del self._blocks[k]
        for k in [k for k in self.touched if k[1] + self.touch_s <= cutoff_s]:
            del self.touched[k]
        return len(old)

    @property
    def block_count(self) -> int:
        return len(self._blocks)
