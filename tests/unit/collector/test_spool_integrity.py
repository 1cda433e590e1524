"""The spool's damaged-file paths: corrupt records are skipped and counted, never fatal.

Pure file I/O in a temporary folder: bytes are flipped in the segment files
the way a bad disk or a torn page would, and what comes back is checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ess_collector.spool import RECORD_HEADER, Spool, encode_record

TOPIC = "ess.telemetry.rack"
KEY = b"site1/bank1/rack1"
RECORD_BYTES = len(encode_record(TOPIC, KEY, b"x" * 100))


def _fill(spool: Spool, first: int, count: int) -> None:
    for n in range(first, first + count):
        spool.append(TOPIC, KEY, f"{n:0100d}".encode())
    spool.flush()


def _numbers(spool: Spool, limit: int = 10_000) -> list[int]:
    return [int(r.value) for r in spool.read(limit)]


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    "where",
    [RECORD_HEADER.size + 20, 0],  # a body byte (CRC fails), the length field (resync)
    ids=["body", "length"],
)
def test_a_corrupt_record_mid_segment_is_skipped_and_the_rest_kept(
    tmp_path: Path, where: int
) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18)
    _fill(spool, 0, 10)
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    _flip(segment, 4 * RECORD_BYTES + where)

    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 18)
    assert _numbers(reopened) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert reopened.corrupt == 1
    _fill(reopened, 10, 2)  # appends continue after the kept records
    assert _numbers(reopened) == [10, 11]
    assert segment.stat().st_size == 10 * RECORD_BYTES  # nothing truncated


def test_a_bad_record_in_a_sealed_segment_never_stalls_the_reader(tmp_path: Path) -> None:
    segment_bytes = RECORD_BYTES * 10
    spool = Spool(tmp_path, max_bytes=segment_bytes * 8, segment_bytes=segment_bytes)
    _fill(spool, 0, 25)  # three segments: 0-9, 10-19 (sealed), 20-24 (active)
    assert _numbers(spool, 5) == list(range(5))
    second = sorted(tmp_path.glob("*.seg"))[1]
    _flip(second, 5 * RECORD_BYTES + RECORD_HEADER.size + 30)  # record 15, not read yet

    assert _numbers(spool) == [*range(5, 15), *range(16, 25)]
    _fill(spool, 25, 3)
    assert _numbers(spool) == [25, 26, 27]
    assert spool.corrupt == 1
    assert spool.dropped == 0


def test_rotated_segments_and_the_cursor_file_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    segment_bytes = RECORD_BYTES * 10
    spool = Spool(tmp_path, max_bytes=segment_bytes * 8, segment_bytes=segment_bytes)
    _fill(spool, 0, 25)
    first, second, _active = sorted(p.name for p in tmp_path.glob("*.seg"))
    spool.read(25)
    spool.commit(3)
    spool.close()
    assert {first, second} <= set(synced)  # sealed segments reach the disk
    assert any(name.startswith("cursor") for name in synced)
    assert tmp_path.name in synced  # the folder, so the rename of the cursor survives
    assert (tmp_path / "cursor").read_text().strip() == "3"
