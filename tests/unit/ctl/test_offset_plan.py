"""`essctl offsets reset` plans offsets as `kafka-consumer-groups --reset-offsets` does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ess_ctl.offset_plan import PartitionState, PlanError, Target, new_offset, plan

AT = datetime(2026, 3, 1, tzinfo=UTC)


def _state(committed: int | None = 50, at_time: int | None = None) -> PartitionState:
    return PartitionState("t", 0, earliest=10, latest=100, committed=committed, at_time=at_time)


@pytest.mark.parametrize(
    ("target", "new", "clamped"),
    [
        (Target("to-offset", value=42), 42, False),
        (Target("to-offset", value=5), 10, True),  # below earliest: earliest
        (Target("to-offset", value=1000), 100, True),  # beyond the end: latest
        (Target("to-offset", value=100), 100, False),  # the end itself is a valid position
        (Target("shift-by", value=-20), 30, False),
        (Target("shift-by", value=-45), 10, True),
        (Target("shift-by", value=60), 100, True),
        (Target("to-earliest"), 10, False),
        (Target("to-latest"), 100, False),
    ],
)
def test_offsets_are_clamped_to_the_partition(target: Target, new: int, clamped: bool) -> None:
    reset = new_offset(_state(), target)
    assert (reset.current, reset.new, reset.clamped) == (50, new, clamped)


def test_to_datetime_takes_the_found_offset_or_the_end() -> None:
    target = Target("to-datetime", at=AT)
    assert new_offset(_state(at_time=77), target).new == 77
    assert new_offset(_state(at_time=None), target).new == 100  # nothing that recent


def test_shift_needs_a_committed_offset_others_do_not() -> None:
    with pytest.raises(PlanError, match="no committed offset"):
        new_offset(_state(committed=None), Target("shift-by", value=-1))
    reset = new_offset(_state(committed=None), Target("to-offset", value=20))
    assert (reset.current, reset.new) == (None, 20)


def test_plan_is_in_topic_partition_order() -> None:
    states = [
        PartitionState("b", 1, 0, 5, 5),
        PartitionState("a", 2, 0, 5, 5),
        PartitionState("b", 0, 0, 5, 5),
    ]
    got = [(r.topic, r.partition, r.new) for r in plan(states, Target("to-earliest"))]
    assert got == [("a", 2, 0), ("b", 0, 0), ("b", 1, 0)]
