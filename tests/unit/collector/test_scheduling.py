"""Slot arithmetic and backoff: boundaries from the wall clock, never drifting."""

from __future__ import annotations

import random

from ess_collector.schedule import is_late, next_slot, overrun_slots, time_left_in_slot
from ess_common.backoff import Backoff


def test_the_next_slot_is_the_next_whole_second() -> None:
    assert next_slot(1000.2) == 1001
    assert next_slot(1000.999) == 1001
    assert next_slot(1000.0) == 1001


def test_slots_only_move_forward_even_if_the_clock_steps_back() -> None:
    assert next_slot(999.5, last_slot=1001) == 1002


def test_a_fast_cycle_costs_no_slot_and_the_schedule_does_not_drift() -> None:
    slot, finished = 1001, 1001.93
    assert overrun_slots(slot, finished) == 0
    assert next_slot(finished, slot) == 1002


def test_a_slow_cycle_costs_the_boundaries_it_ran_over() -> None:
    assert overrun_slots(1001, 1002.05) == 1
    assert overrun_slots(1001, 1004.5) == 3
    assert next_slot(1004.5, 1001) == 1005  # back on a boundary, nothing queued


def test_simulated_hour_of_cycles_stays_on_boundaries() -> None:
    rng = random.Random(7)
    now, last, polled, skipped = 5000.3, None, [], 0
    for _ in range(3600):
        slot = next_slot(now, last)
        now = slot + rng.uniform(0.0, 1.4)  # sometimes a cycle runs over
        skipped += overrun_slots(slot, now)
        polled.append(slot)
        last = slot
    assert polled == sorted(set(polled))  # no slot twice
    # every slot up to the next one due was either polled or counted as an overrun
    assert len(polled) + skipped == next_slot(now, last) - polled[0]


def test_lateness_and_time_left() -> None:
    assert not is_late(1001, 1001.999)
    assert is_late(1001, 1002.0)
    assert time_left_in_slot(1001, 1001.25) == 0.75


def test_backoff_grows_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial_s=1.0, cap_s=30.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    bases = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert all(b / 2 <= d <= b for d, b in zip(delays, bases, strict=True))
    assert len({round(d, 6) for d in delays}) == 10  # jittered: no two alike
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_jitter_spreads_a_fleet_that_failed_together() -> None:
    delays = [Backoff(4.0, 60.0, random.Random(seed)).next_delay() for seed in range(200)]
    assert min(delays) >= 2.0
    assert max(delays) - min(delays) > 1.5  # not one burst
