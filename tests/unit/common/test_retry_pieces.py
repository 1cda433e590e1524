"""Pure pieces of the write path: backoff, error classes, bad-row isolation, lag and liveness."""

from __future__ import annotations

import random
from collections.abc import Sequence

import asyncpg
import pytest
from aiokafka import TopicPartition

from ess_common.backoff import Backoff
from ess_common.db_errors import classify
from ess_sink.lag import is_stalled, partition_lags
from ess_sink.lane import lane_of
from ess_tables.rejects import write_isolating_rejects
from ess_tables.writer import is_rejection


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, cap_s=15.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(15.0, 0.5 * 2**i) for i in range(12)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 15.0
    assert delays[-1] >= 7.5
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize(
    ("exc", "kind", "retriable"),
    [
        (ConnectionRefusedError(111, "refused"), "connection", True),
        (OSError("network unreachable"), "connection", True),
        (asyncpg.ConnectionDoesNotExistError("closed in the middle"), "connection", True),
        (asyncpg.InterfaceError("connection is closed"), "connection", True),
        (TimeoutError(), "timeout", True),
        (
            asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
            "timeout",
            True,
        ),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "unavailable", True),
        (asyncpg.AdminShutdownError("terminating connection"), "unavailable", True),
        (asyncpg.TooManyConnectionsError("too many clients"), "unavailable", True),
        (asyncpg.DeadlockDetectedError("deadlock"), "conflict", True),
        (asyncpg.NumericValueOutOfRangeError("out of range"), "rejected", False),
        (asyncpg.NotNullViolationError("null"), "rejected", False),
        (OverflowError("value out of int16 range"), "rejected", False),
        (asyncpg.UndefinedTableError("relation does not exist"), "other", True),
    ],
)
def test_database_errors_are_classified_by_what_to_do(
    exc: BaseException, kind: str, retriable: bool
) -> None:
    found = classify(exc)
    assert found is not None
    assert (found.kind, found.retriable) == (kind, retriable)
    assert is_rejection(exc) is (not retriable)


def test_a_programming_error_is_not_a_database_error() -> None:
    assert classify(KeyError("x")) is None


class _Refuses:
    """A fake table that refuses whole writes containing any bad item."""

    def __init__(self, bad: set[int], fail_with: BaseException | None = None) -> None:
        self.bad = bad
        self.stored: list[int] = []
        self.writes = 0
        self.fail_with = fail_with

    async def write(self, items: Sequence[int]) -> int:
        self.writes += 1
        if self.fail_with is not None:
            raise self.fail_with
        if self.bad & set(items):
            raise OverflowError("value out of int64 range")
        self.stored.extend(items)
        return len(items)


async def test_bisection_writes_everything_but_the_refused_rows() -> None:
    table = _Refuses(bad={3, 700, 701})
    items = list(range(1000))
    written, rejected = await write_isolating_rejects(items, table.write, is_rejection)
    assert sorted(table.stored) == [i for i in items if i not in table.bad]
    assert sum(written) == 997
    assert [(r.index, r.item) for r in rejected] == [(3, 3), (700, 700), (701, 701)]
    assert all(isinstance(r.error, OverflowError) for r in rejected)
    assert table.writes < 70  # about 2 * log2(n) per bad row, not n


async def test_a_clean_batch_is_one_write() -> None:
    table = _Refuses(bad=set())
    await write_isolating_rejects(list(range(100)), table.write, is_rejection)
    assert table.writes == 1


async def test_an_outage_during_bisection_propagates_for_a_retry_of_everything() -> None:
    table = _Refuses(bad=set(), fail_with=ConnectionResetError())
    with pytest.raises(ConnectionResetError):
        await write_isolating_rejects(list(range(10)), table.write, is_rejection)


def test_lag_is_end_minus_position_never_negative() -> None:
    a, b, c = (TopicPartition("t", i) for i in range(3))
    lags = partition_lags({a: 100, b: 50, c: 7}, {a: 40, b: 60})
    assert lags == {a: 60, b: 0}


def test_stalled_only_with_lag_and_no_commit_for_the_bound() -> None:
    assert is_stalled(total_lag=5, seconds_since_commit=121, stall_s=120)
    assert not is_stalled(total_lag=5, seconds_since_commit=119, stall_s=120)
    assert not is_stalled(total_lag=0, seconds_since_commit=10_000, stall_s=120)


def test_lanes_split_every_topic_evenly_and_never_share_a_partition() -> None:
    partitions = [TopicPartition(f"p.telemetry.{t}", p) for t in ("rack", "bank") for p in range(6)]
    for lanes in (1, 2, 3):
        owners = {tp: lane_of(tp, lanes) for tp in partitions}
        assert set(owners.values()) == set(range(lanes))
        per_lane = [sum(1 for o in owners.values() if o == lane) for lane in range(lanes)]
        assert per_lane == [len(partitions) // lanes] * lanes
