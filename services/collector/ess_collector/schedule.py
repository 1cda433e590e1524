"""Slot arithmetic: polls start on wall-clock second boundaries and never drift.

Every decision is recomputed from the wall clock, never from the previous
sleep, so a slow cycle costs the slots it overlapped (counted as overruns)
and the next poll is again on a boundary. Slots only move forward: if the
clock steps back, the next slot is still after the last one polled, so no
slot is read twice. Pure functions of their arguments.
"""

from __future__ import annotations

import math


def next_slot(now: float, last_slot: int | None = None) -> int:
    """The next boundary after `now` (epoch seconds), later than `last_slot`."""
    slot = math.floor(now) + 1
    if last_slot is not None and slot <= last_slot:
        slot = last_slot + 1
    return slot


def overrun_slots(slot: int, finished_at: float) -> int:
    """Boundaries a cycle for `slot` was still running at (each one a skipped poll)."""
    return max(0, math.floor(finished_at) - slot)


def is_late(slot: int, read_at: float) -> bool:
    """A reading taken after its second had passed."""
    return read_at >= slot + 1


def time_left_in_slot(slot: int, now: float) -> float:
    """Seconds until the boundary after `slot` (negative once it has passed)."""
    return slot + 1 - now
