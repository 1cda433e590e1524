"""Partition naming, the manifest's changes and which segments are live."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ess_archive_layout.layout import (
    PartitionDay,
    days_between,
    new_segment_id,
    parse_prefix,
    part_index,
    partition_of,
)
from ess_archive_layout.manifest import (
    FileEntry,
    Manifest,
    decode_manifest,
    encode_manifest,
    live_segments,
)

PD = PartitionDay("rack", "site1", date(2026, 12, 1))


def entry(path: str, rows: int = 10, folded: tuple[str, ...] = ()) -> FileEntry:
    return FileEntry(
        path=path, rows=rows, bytes=100, devices=1, min_ts=0, max_ts=9, created_s=5, folded=folded
    )


def test_paths_are_hive_partitions_and_parse_back() -> None:
    assert PD.prefix == "table=rack/site=site1/date=2026-12-01"
    assert PD.part_path(3) == "table=rack/site=site1/date=2026-12-01/part-00003.parquet"
    assert PD.manifest_path.endswith("/_manifest.json")
    seg = PD.segment_path("x")
    assert seg.startswith("_staging/table=rack/site=site1/date=2026-12-01/")
    for path in (PD.part_path(0), PD.manifest_path, seg):
        assert parse_prefix(path) == PD
    assert parse_prefix("table=nope/site=s/date=2026-12-01") is None
    assert part_index(PD.part_path(42)) == 42
    assert part_index(seg) is None


def test_a_slot_belongs_to_its_utc_day() -> None:
    late = datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)
    assert partition_of("rack", "site1", late) == PD
    assert partition_of("rack", "site1", datetime(2026, 12, 2, tzinfo=UTC)).day == date(2026, 12, 2)
    assert PD.end.timestamp() - PD.start.timestamp() == 86_400
    assert days_between(
        datetime(2026, 12, 1, 12, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    ) == [
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]


def test_segment_ids_are_unique_and_time_ordered() -> None:
    a = new_segment_id(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    b = new_segment_id(datetime(2026, 12, 1, 0, 0, 2, tzinfo=UTC))
    assert a < b
    assert a != new_segment_id(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))


def test_listing_a_segment_twice_keeps_it_once() -> None:
    m = Manifest.empty(PD).with_segments([entry("s1")]).with_segments([entry("s1"), entry("s2")])
    assert [s.path for s in m.segments] == ["s1", "s2"]
    assert m.generation == 2
    assert m.rows == 20
    assert m.staged_rows == 20


def test_a_rollup_replaces_its_parts_and_drops_the_folded_segments() -> None:
    m = Manifest.empty(PD).with_segments([entry("s1"), entry("s2"), entry("s3")])
    m = m.rolled_up([entry(PD.part_path(0), 20, ("s1", "s2"))], {"s1", "s2"})
    assert [s.path for s in m.segments] == ["s3"]
    assert m.rows == 30
    m = m.rolled_up([entry(PD.part_path(0), 30, ("s3",))], {"s3"})
    assert len(m.parts) == 1
    assert m.parts[0].rows == 30
    assert m.segments == ()


def test_segments_a_part_already_holds_are_not_live() -> None:
    m = Manifest.empty(PD).with_segments([entry("s1"), entry("s2")])
    assert [s.path for s in live_segments(m, {"s1"})] == ["s2"]


def test_the_manifest_round_trips_and_refuses_other_versions() -> None:
    m = Manifest.empty(PD).with_segments([entry("s1")])
    assert decode_manifest(encode_manifest(m)) == m
    with pytest.raises(ValueError, match="version"):
        decode_manifest(b'{"v": 2}')
    with pytest.raises(ValueError, match="Extra inputs"):
        decode_manifest(b'{"v": 1, "table": "rack", "site": "site1", "date": "2026-12-01", "x": 1}')
