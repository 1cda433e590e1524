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
        # (table, partition, slice start) -> [lowest, highest] offset carrying a slot of it
        self.slice_offsets: dict[tuple[Table, int, int], list[int]] = {}
        # (table, device) -> the partition its messages are on (keyed by device)
        self.partition_of: dict[tuple[Table, str], int] = {}

    def note_offsets(
        self, table: Table, partition: int, found: Iterable[tuple[str, int, int]]
    ) -> None:
        """Remember where (device, slot, offset) triples were: for lag-aware loss and
        offset-range replays."""
        offsets = self.slice_offsets
        touch = self.touch_s
        parts = self.partition_of
        for device, slot, offset in found:
            key = (table, partition, slot - slot % touch)
            span = offsets.get(key)
            if span is None:
                offsets[key] = [offset, offset]
            elif offset > span[1]:
                span[1] = offset
            elif offset < span[0]:
                span[0] = offset
            parts[(table, device)] = partition

    def offset_span(
        self, table: Table, partition: int, start_s: int, end_s: int
    ) -> tuple[int, int] | None:
        """`[first, last + 1)` of the offsets on `partition` that carried slots of the window."""
        lo: int | None = None
        hi = -1
        first = start_s - start_s % self.touch_s
        for slice_start in range(first, end_s, self.touch_s):
            span = self.slice_offsets.get((table, partition, slice_start))
            if span is not None:
                lo = span[0] if lo is None else min(lo, span[0])
                hi = max(hi, span[1])
        return None if lo is None else (lo, hi + 1)

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
        for o in [o for o in self.slice_offsets if o[2] + self.touch_s <= cutoff_s]:
            del self.slice_offsets[o]
        return len(old)

    @property
    def block_count(self) -> int:
        return len(self._blocks)

    # -- a snapshot that survives a restart (stored in the clusters by the detector) ----

    def segments_touched_since(self, since: float, segment_s: int) -> set[tuple[Table, int]]:
        """(table, segment start) of every segment with a new slot after `since`."""
        return {(t, s - s % segment_s) for (t, s), at in self.touched.items() if at > since}

    def segment_bits(self, table: Table, segment_start: int, segment_s: int) -> dict[str, bytes]:
        """Every device's seen slots of `[segment_start, + segment_s)` as little-endian bytes."""
        found: dict[str, bytes] = {}
        for device in self.devices(table, segment_start, segment_start + segment_s):
            bits = self.bits(table, device, segment_start, segment_start + segment_s)
            if bits:
                found[device] = bits.to_bytes((segment_s + 7) // 8, "little")
        return found

    def snapshot_segment_s(self) -> int:
        """The unit of the snapshot: an hour, or the block when blocks are shorter."""
        return min(self.block_s, 3600)

    def restore_segment(
        self, table: Table, device: str, segment_start: int, raw: bytes, now: float
    ) -> None:
        """OR a stored segment's slots back in (touching its slices, so windows are due)."""
        bits = int.from_bytes(raw, "little")
        if not bits:
            return
        offset = segment_start % self.block_s
        block = self._blocks.setdefault((table, segment_start - offset), _Block())
        stored = block.devices.get(device)
        if stored is None:
            stored = block.devices[device] = bytearray((self.block_s + 7) // 8)
        lo = offset >> 3  # segments are byte-aligned inside their block (3600 = 450 * 8)
        merged = int.from_bytes(stored[lo : lo + len(raw)], "little") | bits
        stored[lo : lo + len(raw)] = merged.to_bytes(len(raw), "little")
        first = segment_start + (bits & -bits).bit_length() - 1
        last = segment_start + bits.bit_length() - 1
        span = self._seen_span.setdefault((table, device), [first, last])
        span[0], span[1] = min(span[0], first), max(span[1], last)
        for slice_start in range(segment_start, last + 1, self.touch_s):
            if (bits >> (slice_start - segment_start)) & full_mask_of(self.touch_s):
                self.touched.setdefault((table, slice_start), now)


def full_mask_of(length: int) -> int:
    return (1 << length) - 1
