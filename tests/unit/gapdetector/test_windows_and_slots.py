"""Windows, their schedule, and the slot tracker fed by the light parse."""

from __future__ import annotations

from datetime import UTC, datetime

from ess_common.codec import encode_reading
from ess_common.synthetic import readings, seed_fleet
from ess_gapdetector.windows import Window, WindowScheduler, window_containing, windows_overlapping
from ess_loss.lossmath import runs_of_set_bits
from ess_loss.slots import SlotTracker, light_slot

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
E0 = int(T0.timestamp())


def test_windows_are_utc_aligned() -> None:
    w = window_containing("hour", E0 + 3599)
    assert (w.start_s, w.end_s) == (E0, E0 + 3600)
    assert [x.start_s - E0 for x in windows_overlapping("minute", E0 + 30, E0 + 150)] == [
        0,
        60,
        120,
    ]


def test_light_parse_reads_the_slot_of_every_encoded_reading() -> None:
    for reading in list(readings(seed_fleet(), T0, seconds=2))[:10]:
        assert light_slot(encode_reading(reading)) == int(reading.ts.timestamp())


def test_light_parse_falls_back_and_rejects_what_is_not_a_reading() -> None:
    assert light_slot(b'{"ts": "2026-11-30T12:00:05+00:00", "v": 1}') == E0 + 5
    assert light_slot(b'{"ts": "2026-11-30T12:00:05.5+00:00"}') is None  # not a whole second
    assert light_slot(b'{"ts": "2026-11-30T12:00:05"}') is None  # no zone
    assert light_slot(b"not json") is None
    assert light_slot(None) is None


def test_tracker_bits_span_blocks_and_ignore_duplicates() -> None:
    tracker = SlotTracker(block_s=3600, touch_s=60)
    device = "site1/bank1/rack1"
    for s in (*range(3590, 3610), 3595):  # across the block boundary, one duplicate
        tracker.add("rack", device, E0 + s, now=1.0)
    bits = tracker.bits("rack", device, E0 + 3580, E0 + 3620)
    assert runs_of_set_bits(bits) == [(10, 30)]
    assert tracker.bits("rack", "site1/bank1/rack2", E0, E0 + 60) == 0
    assert tracker.block_count == 2
    assert tracker.drop_blocks_before(E0 + 3600) == 1
    assert runs_of_set_bits(tracker.bits("rack", device, E0 + 3580, E0 + 3620)) == [(20, 30)]


def test_tracker_knows_which_devices_are_expected() -> None:
    tracker = SlotTracker(block_s=86400, touch_s=60)
    tracker.add("pcs", "site1/pcs1", E0, now=1.0)
    tracker.add("pcs", "site1/pcs2", E0 + 7200, now=1.0)
    # An hour later: pcs1 was heard from an hour ago, pcs2 not yet installed.
    assert tracker.expected_devices("pcs", E0 + 3600, E0 + 7200, 86400) == {"site1/pcs1"}
    # pcs1 silent for longer than allowed: no longer expected.
    assert tracker.expected_devices("pcs", E0 + 7200, E0 + 7260, 3600) == {"site1/pcs2"}
    assert not tracker.device_is_valid("pcs", "site1/bank1")
    assert tracker.device_is_valid("pcs", "site1/pcs1")


def test_a_window_is_due_after_settle_and_catching_up() -> None:
    started = E0 + 10_000.0
    sched = WindowScheduler(("minute",), ("rack",), settle_s=5, started_s=started, lookback_s=1e9)
    touched = [("rack", E0, started)]  # data for [E0, E0+60) arrived at start
    assert sched.due(touched, now=started + 1, caught_up_at=started + 1) == []  # settling
    assert sched.due(touched, now=started + 6, caught_up_at=started) == []  # not caught up
    due = sched.due(touched, now=started + 6, caught_up_at=started + 6)
    assert due == [("rack", Window(E0, "minute"))]
    sched.mark_evaluated("rack", Window(E0, "minute"), started + 6)
    assert sched.due(touched, now=started + 7, caught_up_at=started + 7) == []
    # Late data for the same window makes it due again once it has settled.
    late = [("rack", E0, started + 8)]
    assert sched.due(late, now=started + 9, caught_up_at=started + 9) == []
    assert sched.due(late, now=started + 14, caught_up_at=started + 14) == due
    sched.mark_evaluated("rack", Window(E0, "minute"), started + 14)
    sched.invalidate("rack", Window(E0, "minute"))
    assert sched.due(late, now=started + 15, caught_up_at=started + 15) == due


def test_windows_closing_while_running_are_due_even_without_data() -> None:
    started = float(E0 + 10)
    sched = WindowScheduler(("minute",), ("bank", "pcs"), 2, started, lookback_s=0)
    assert sched.due([], now=E0 + 61, caught_up_at=E0 + 61) == []
    due = sched.due([], now=E0 + 62, caught_up_at=E0 + 62)
    assert due == [("bank", Window(E0, "minute")), ("pcs", Window(E0, "minute"))]


def test_windows_older_than_the_lookback_are_left_alone() -> None:
    started = float(E0 + 7200)
    sched = WindowScheduler(("minute",), ("rack",), 0, started, lookback_s=3600)
    touched = [("rack", E0, started), ("rack", E0 + 3600, started)]
    due = sched.due(touched, now=started + 1, caught_up_at=started + 1)
    assert due == [("rack", Window(E0 + 3600, "minute"))]
