"""Archived slots per device-day, differences, and staging that keeps the first reading."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ess_archive.stage import Stager
from ess_archive_layout.keys import DayKeys, bits_in_range, differences
from ess_archive_layout.layout import PartitionDay
from ess_common.synthetic import readings, seed_fleet
from ess_tables.rows import to_row

DAY = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_slot_is_new_once() -> None:
    keys = DayKeys(int(DAY.timestamp()))
    assert keys.add("site1/pcs1", DAY + timedelta(seconds=86_399))
    assert not keys.add("site1/pcs1", DAY + timedelta(seconds=86_399))
    assert keys.add("site1/pcs1", DAY)
    assert keys.as_ints() == {"site1/pcs1": 1 | 1 << 86_399}
    assert keys.count() == 2


def test_differences_and_ranges() -> None:
    ours = {"a": 0b0111, "b": 0b1}
    theirs = {"a": 0b1101, "c": 0b10}
    assert list(differences(ours, theirs)) == [("a", 0b0010, 0b1000), ("b", 1, 0), ("c", 0, 0b10)]
    assert bits_in_range(0b1111, 100, 101, 103) == 0b0110


def _rows(start: datetime, seconds: int) -> list[tuple[object, ...]]:
    return [to_row(r) for r in readings(seed_fleet(), start, seconds) if r.table == "pcs"]


def test_staging_drops_slots_already_archived_or_staged() -> None:
    stager = Stager()
    rows = _rows(DAY - timedelta(seconds=1), 3)  # one second of the day before
    needed = stager.unknown_days("pcs", rows)
    assert {pd.day for pd in needed} == {date(2026, 11, 30), date(2026, 12, 1)}
    for pd in needed:
        keys = DayKeys(pd.start_s)
        if pd.day == date(2026, 12, 1) and pd.site == "site1":
            keys.add("site1/pcs1", DAY)  # archived before a crash
        stager.load(pd, keys)
    staged, duplicates = stager.add("pcs", rows)
    assert (staged, duplicates) == (len(rows) - 1, 1)
    assert stager.add("pcs", rows) == (0, len(rows))  # a replay of the same range
    assert stager.count == len(rows) - 1
    pd = PartitionDay("pcs", "site1", date(2026, 12, 1))
    assert len(stager.rows[pd]) == 1
    stager.done(pd)
    assert stager.count == len(rows) - 2
    assert pd not in stager.pending()


def test_forgetting_reloads_the_days_and_idle_days_are_bounded() -> None:
    stager = Stager()
    for i in range(5):
        pd = PartitionDay("pcs", "site1", date(2026, 12, 1) + timedelta(days=i))
        stager.load(pd, DayKeys(pd.start_s))
    stager.forget_idle_days(keep=2)
    assert sorted(pd.day.day for pd in stager.keys) == [4, 5]
    stager.forget()
    assert not stager.keys
    assert stager.count == 0
