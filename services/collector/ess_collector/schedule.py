"""Slot arithmetic: polls start on wall-clock second boundaries and never drift.

Every decision is recomputed from the wall clock, never from the previous
sleep, so a slow cycle costs the slots it overlapped (counted as overruns)
and the next poll is again on a boundary. If the clock steps back by a
little (up to `MAX_WAIT_S` until the slot after the last one polled), that
wait is taken, so no slot is read twice. A larger step (NTP correcting a clock
that ran ahead) is followed: the next slot is the next boundary of the new
clock, so the pollers never sleep through the step (and the liveness probe
never sees them stop); the slots lived again are read again, and the sinks'
`ON CONFLICT DO NOTHING` and the cache's dedupe keep the first reading of each.
Pure functions of their arguments.
"""

from __future__ import annotations

import math

# The longest wait for a slot: one second, plus a step back of up to two seconds.
MAX_WAIT_S = 3.0


def next_slot(now: float, last_slot: int | None = None) -> int:
    """The next boundary after `now` (epoch seconds), later than `last_slot` unless
    the clock stepped back so far that waiting for that would take over `MAX_WAIT_S`."""
    slot = math.floor(now) + 1
    if last_slot is not None and slot <= last_slot and last_slot + 1 - now <= MAX_WAIT_S:
        slot = last_slot + 1
    return slot


def stepped_back(slot: int, now: float) -> bool:
    """The wall clock moved back while waiting for `slot`: choose the slot again."""
    return slot - now > MAX_WAIT_S


def overrun_slots(slot: int, finished_at: float) -> int:
    """Boundaries a cycle for `slot` was still running at (each one a skipped poll)."""
    return max(0, math.floor(finished_at) - slot)


def is_late(slot: int, read_at: float) -> bool:
    """A reading taken after its second had passed."""
    return read_at >= slot + 1


def time_left_in_slot(slot: int, now: float) -> float:
    """Seconds until the boundary after `slot` (negative once it has passed)."""
    return slot + 1 - now
