"""When a day's segments are rolled up, and how they are packed into parts."""

from __future__ import annotations

from datetime import date

from ess_archive.writer import SEGMENTS_BEFORE_ROLLUP, pack_segments, rollup_due
from ess_archive_layout.layout import PartitionDay
from ess_archive_layout.manifest import FileEntry, Manifest

PD = PartitionDay("rack", "site1", date(2026, 12, 1))


def seg(name: str, rows: int, created_s: int = 0) -> FileEntry:
    return FileEntry(
        path=name, rows=rows, bytes=1, devices=1, min_ts=0, max_ts=1, created_s=created_s
    )


def test_due_when_old_enough_many_or_the_day_is_over() -> None:
    start = PD.start_s
    m = Manifest.empty(PD).with_segments([seg("a", 5, start + 100)])
    assert not rollup_due(Manifest.empty(PD), start + 10**6, 600)
    assert not rollup_due(m, start + 600, 600)
    assert rollup_due(m, start + 700, 600)
    assert rollup_due(m, start + 86_400, 10**9)  # the day is over
    many = Manifest.empty(PD).with_segments(
        [seg(f"s{i}", 1, start + 100) for i in range(SEGMENTS_BEFORE_ROLLUP)]
    )
    assert rollup_due(many, start + 101, 10**9)


def test_segments_are_packed_in_order_and_earlier_parts_stay_the_same() -> None:
    segs = [seg("a", 40), seg("b", 50), seg("c", 30), seg("d", 200), seg("e", 10)]
    packed = [[s.path for s in group] for group in pack_segments(segs, 100)]
    assert packed == [["a", "b"], ["c"], ["d"], ["e"]]
    more = [[s.path for s in g] for g in pack_segments([*segs, seg("f", 80)], 100)]
    assert more[:3] == packed[:3]
    assert more[3] == ["e", "f"]
