"""Which slots of a partition-day are archived: a bit per device and second of the day.

The archive keeps the first reading of a slot, as the clusters do: a
reading whose (device, ts) is already archived is a replay or a retry and is
dropped before it is staged. A device-day is 10,800 bytes (86,400 bits), so
a day of 1,000 devices of one site is about 11 MB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

DAY_S = 86_400
_BYTES = DAY_S // 8


class DayKeys:
    """Slots present per device of one UTC day (`origin_s` = the day's first second)."""

    def __init__(self, origin_s: int) -> None:
        self.origin_s = origin_s
        self.bits: dict[str, bytearray] = {}

    def add(self, device: str, ts: datetime) -> bool:
        """Mark a slot; False when it was already there."""
        return self.add_second(device, int(ts.timestamp()))

    def add_second(self, device: str, epoch_s: int) -> bool:
        """`add` with the slot as epoch seconds (the hot path of staging)."""
        second = epoch_s - self.origin_s
        day = self.bits.get(device)
        if day is None:
            day = self.bits[device] = bytearray(_BYTES)
        byte, bit = second >> 3, 1 << (second & 7)
        if day[byte] & bit:
            return False
        day[byte] |= bit
        return True

    def add_all(self, devices: Iterable[str], slots: Iterable[datetime]) -> int:
        """Mark every (device, slot) pair; returns how many were new."""
        return sum(self.add(d, ts) for d, ts in zip(devices, slots, strict=True))

    def as_ints(self) -> dict[str, int]:
        """Per device, the day's slots as one integer (bit i = origin + i s), as
        `ess_tables.presence` gives them."""
        return {d: int.from_bytes(b, "little") for d, b in self.bits.items() if any(b)}

    def count(self) -> int:
        return sum(int.from_bytes(b, "little").bit_count() for b in self.bits.values())


def bits_in_range(bits: int, origin_s: int, start_s: int, end_s: int) -> int:
    """`bits` (bit i = origin + i s) limited to seconds `[start_s, end_s)`."""
    lo = max(0, start_s - origin_s)
    hi = max(lo, end_s - origin_s)
    return bits & (((1 << (hi - lo)) - 1) << lo)


def differences(ours: dict[str, int], theirs: dict[str, int]) -> Iterator[tuple[str, int, int]]:
    """Per device: (device, bits only in `ours`, bits only in `theirs`), where any differ."""
    for device in sorted(set(ours) | set(theirs)):
        a, b = ours.get(device, 0), theirs.get(device, 0)
        if a != b:
            yield device, a & ~b, b & ~a
