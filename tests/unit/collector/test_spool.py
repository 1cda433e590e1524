"""The on-disk spool: ordered, bounded by bytes (drop oldest), restart-safe.

Pure file I/O in a temporary folder: the files are the thing under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ess_collector.spool import Spool, encode_record

TOPIC = "ess.telemetry.rack"
RECORD_BYTES = len(encode_record(TOPIC, b"site1/bank1/rack1", b"x" * 100))


def _fill(spool: Spool, first: int, count: int) -> None:
    for n in range(first, first + count):
        spool.append(TOPIC, b"site1/bank1/rack1", f"{n:0100d}".encode())
    spool.flush()


def _numbers(spool: Spool, limit: int = 10_000) -> list[int]:
    return [int(r.value) for r in spool.read(limit)]


def test_records_come_back_in_order_with_their_topic_key_and_sequence(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    _fill(spool, 0, 100)
    records = spool.read(1000)
    assert [int(r.value) for r in records] == list(range(100))
    assert [r.seq for r in records] == list(range(100))
    assert {(r.topic, r.key) for r in records} == {(TOPIC, b"site1/bank1/rack1")}
    assert spool.depth == 100
    assert len(list(tmp_path.glob("*.seg"))) > 1  # rotated at 4 KiB


def test_reads_continue_where_the_last_one_stopped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    _fill(spool, 0, 10)
    assert _numbers(spool, 4) == [0, 1, 2, 3]
    _fill(spool, 10, 5)
    assert _numbers(spool) == list(range(4, 15))
    assert _numbers(spool) == []


def test_a_record_leaves_only_when_committed_and_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    _fill(spool, 0, 100)
    spool.read(100)
    segments_before = len(list(tmp_path.glob("*.seg")))
    spool.commit(60)
    assert spool.depth == 40
    assert len(list(tmp_path.glob("*.seg"))) < segments_before
    spool.commit(100)
    assert spool.depth == 0


def test_a_restart_resumes_at_the_first_unacknowledged_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    _fill(spool, 0, 50)
    spool.read(50)
    spool.commit(30)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    assert reopened.depth == 20
    assert _numbers(reopened) == list(range(30, 50))
    _fill(reopened, 50, 3)
    assert [r.seq for r in reopened.read(10)] == [50, 51, 52]


def test_a_torn_record_at_the_tail_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18)
    _fill(spool, 0, 5)
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as stream:
        stream.write(encode_record(TOPIC, b"k", b"half written")[:-3])
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18)
    assert _numbers(reopened) == [0, 1, 2, 3, 4]
    _fill(reopened, 5, 1)
    assert _numbers(reopened) == [5]


def test_a_full_spool_drops_the_oldest_unsent_segment_and_counts_it(tmp_path: Path) -> None:
    segment_bytes = RECORD_BYTES * 10
    spool = Spool(tmp_path, max_bytes=segment_bytes * 4, segment_bytes=segment_bytes)
    _fill(spool, 0, 40)  # exactly full: four segments of ten
    assert spool.dropped == 0
    _fill(spool, 40, 1)  # no room: the oldest segment (0-9) goes
    assert spool.dropped == 10
    assert spool.size_bytes <= spool.max_bytes
    assert spool.depth == 31
    assert _numbers(spool) == list(range(10, 41))


def test_records_handed_to_kafka_are_never_dropped(tmp_path: Path) -> None:
    segment_bytes = RECORD_BYTES * 10
    spool = Spool(tmp_path, max_bytes=segment_bytes * 4, segment_bytes=segment_bytes)
    _fill(spool, 0, 40)
    assert _numbers(spool, 15) == list(range(15))  # 0-14 are in flight
    _fill(spool, 40, 1)
    assert spool.dropped == 10  # segment 20-29: the oldest one nothing was sent from
    assert _numbers(spool) == [15, 16, 17, 18, 19, *range(30, 41)]
    spool.commit(15)
    assert spool.depth == 16


def test_when_only_records_in_flight_remain_the_new_record_is_dropped(tmp_path: Path) -> None:
    segment_bytes = RECORD_BYTES * 10
    spool = Spool(tmp_path, max_bytes=segment_bytes * 4, segment_bytes=segment_bytes)
    _fill(spool, 0, 40)
    spool.read(40)  # everything in flight, Kafka silent
    assert spool.append(TOPIC, b"k", b"1" * 100) is None
    assert spool.dropped == 1
    assert spool.depth == 40


def test_rewind_reads_unsent_records_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    _fill(spool, 0, 30)
    spool.read(30)
    spool.commit(5)
    spool.rewind(12)
    assert _numbers(spool) == list(range(12, 30))
    spool.rewind(0)  # never before the cursor
    assert _numbers(spool)[0] == 5


def test_the_spool_must_hold_several_segments() -> None:
    with pytest.raises(ValueError, match="4 segments"):
        Spool(Path("/nonexistent"), max_bytes=1000, segment_bytes=500)
