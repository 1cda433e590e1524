"""The on-disk spool: an append-only log of encoded readings, bounded by bytes.

Layout under the spool directory:

- `<first seq, 20 digits>.seg`: segment files of records, appended in order.
  A record is `[body length u32][crc32 u32][topic len u16][key len u16]
  topic key value`; the CRC finds a torn tail after a crash, which is cut off,
  and damaged records anywhere else: each damaged stretch is skipped up to the
  next intact record, counted in `corrupt`, and takes one sequence number (the
  same rule at recovery and when reading, so the cursor keeps its meaning).
- `cursor`: the sequence number of the first record Kafka has not acknowledged,
  written to a temporary file, fsynced, renamed, and the folder fsynced.

Durability: a sealed segment's descriptor is kept until `sync_handles` hands
it to the publisher's fsync thread (or `close` fsyncs it), so a rotation never
leaves unsynced data behind; the active segment is fsynced the same way.

Records are appended by the poller and read back, in order, by the publisher;
`commit(seq)` says every record before `seq` is acknowledged, and segments
wholly before the cursor are deleted. A restart resumes at the cursor.

Full spool policy (drop oldest): when an append would exceed `max_bytes`, the
oldest segment none of whose records has been handed to Kafka yet is deleted
and its records are counted in `dropped`. Segments holding records in flight
are kept: their fate is Kafka's, and counting them as dropped could be wrong.
If only those are left, the new record itself is dropped (and counted).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

RECORD_HEADER = struct.Struct(">II")  # body length, crc32 of body
BODY_HEADER = struct.Struct(">HH")  # topic length, key length
SEGMENT_SUFFIX = ".seg"
CURSOR_FILE = "cursor"
MAX_RECORD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    seq: int
    topic: str
    key: bytes
    value: bytes

    @property
    def size(self) -> int:
        return (
            RECORD_HEADER.size
            + BODY_HEADER.size
            + len(self.topic)
            + len(self.key)
            + len(self.value)
        )


@dataclass
class _Segment:
    first_seq: int
    path: Path
    count: int = 0
    size: int = 0

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.count


def encode_record(topic: str, key: bytes, value: bytes) -> bytes:
    topic_bytes = topic.encode()
    body = BODY_HEADER.pack(len(topic_bytes), len(key)) + topic_bytes + key + value
    return RECORD_HEADER.pack(len(body), zlib.crc32(body)) + body


def _intact_record(stream: BinaryIO) -> tuple[bytes, int] | None:
    """(body, bytes consumed) of the next whole, intact record, else None."""
    header = stream.read(RECORD_HEADER.size)
    if len(header) < RECORD_HEADER.size:
        return None
    length, crc = RECORD_HEADER.unpack(header)
    if length > MAX_RECORD_BYTES:
        return None
    body = stream.read(length)
    if len(body) < length or zlib.crc32(body) != crc:
        return None
    return body, RECORD_HEADER.size + length


def _intact_at(data: bytes, offset: int) -> bool:
    if offset + RECORD_HEADER.size > len(data):
        return False
    length: int
    crc: int
    length, crc = RECORD_HEADER.unpack_from(data, offset)
    end = offset + RECORD_HEADER.size + length
    return (
        BODY_HEADER.size <= length <= MAX_RECORD_BYTES
        and end <= len(data)
        and zlib.crc32(data[offset + RECORD_HEADER.size : end]) == crc
    )


def _next_intact(data: bytes) -> int | None:
    """Offset (> 0) of the first intact record in `data` after a damaged one at 0."""
    if len(data) >= RECORD_HEADER.size:  # most often only the body is damaged
        length: int = struct.unpack_from(">I", data)[0]
        after = RECORD_HEADER.size + length
        if length <= MAX_RECORD_BYTES and _intact_at(data, after):
            return after
    offset = 1
    # a length below MAX_RECORD_BYTES starts with a zero byte: jump between those
    while (offset := data.find(b"\x00", offset)) != -1:
        if _intact_at(data, offset):
            return offset
        offset += 1
    return None


def _read_record(stream: BinaryIO) -> tuple[bytes | None, int] | None:
    """The next record: (body, bytes) if intact, (None, bytes) for a damaged stretch
    skipped up to the next intact record, None at the end (or a torn tail)."""
    start = stream.tell()
    found = _intact_record(stream)
    if found is not None:
        return found
    stream.seek(start)
    resume = _next_intact(stream.read())
    stream.seek(start if resume is None else start + resume)
    return None if resume is None else (None, resume)


def _decode_body(seq: int, body: bytes) -> SpoolRecord:
    topic_len, key_len = BODY_HEADER.unpack_from(body)
    start = BODY_HEADER.size
    topic = body[start : start + topic_len].decode()
    key = body[start + topic_len : start + topic_len + key_len]
    return SpoolRecord(seq, topic, key, body[start + topic_len + key_len :])


class Spool:
    """Bounded, ordered, restart-safe queue of records on disk (one process at a time)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int) -> None:
        if segment_bytes * 4 > max_bytes:
            raise ValueError("the spool must hold at least 4 segments (max_bytes >= 4 x segment)")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0
        self.corrupt = 0  # damaged records skipped (each a stretch up to an intact one)
        self._unsynced: list[int] = []  # descriptors of sealed segments not fsynced yet
        self._cursor_lock = threading.Lock()  # saved from the fsync thread and at close
        self._segments: list[_Segment] = []
        self._cursor = 0
        self._saved_cursor = -1
        self._next_seq = 0
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._reader_segment: _Segment | None = None
        self._read_seq = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._recover()

    # -- state -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records not yet acknowledged by Kafka (in flight or waiting)."""
        acked_in_first = 0
        if self._segments:
            acked_in_first = max(0, self._cursor - self._segments[0].first_seq)
        return sum(s.count for s in self._segments) - acked_in_first

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def read_position(self) -> int:
        """Sequence number of the next record `read` returns."""
        return self._read_seq

    # -- writing -----------------------------------------------------------------

    def append(self, topic: str, key: bytes, value: bytes) -> int | None:
        """Add a record at the end; its sequence number, or None if it was dropped."""
        record = encode_record(topic, key, value)
        while self.size_bytes + len(record) > self.max_bytes:
            if not self._drop_oldest_unsent():
                self.dropped += 1
                return None
        active = self._active_segment(len(record))
        assert self._writer is not None
        self._writer.write(record)
        active.count += 1
        active.size += len(record)
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def flush(self) -> None:
        """Hand buffered appends to the OS: readers (and a restart) see them."""
        if self._writer is not None:
            self._writer.flush()

    def sync_handles(self) -> list[int]:
        """Descriptors to `fsync_and_close` (in a thread): sealed segments, the active one."""
        handles, self._unsynced = self._unsynced, []
        if self._writer is not None:
            self.flush()
            handles.append(os.dup(self._writer.fileno()))
        return handles

    def _active_segment(self, incoming: int) -> _Segment:
        active = self._segments[-1] if self._segments and self._writer is not None else None
        if active is not None and active.size + incoming <= self.segment_bytes:
            return active
        if self._writer is not None:
            self._writer.flush()
            self._unsynced.append(os.dup(self._writer.fileno()))
            self._writer.close()
        segment = _Segment(self._next_seq, self._segment_path(self._next_seq))
        self._writer = segment.path.open("ab", buffering=256 * 1024)
        self._segments.append(segment)
        return segment

    def _drop_oldest_unsent(self) -> bool:
        for index, segment in enumerate(self._segments[:-1]):  # never the one being written
            if segment.first_seq < self._read_seq:
                continue  # some of it is in flight or acknowledged
            self._segments.pop(index)
            self.dropped += segment.count
            if self._reader_segment is segment:
                self._close_reader()
                nxt = self._segments[index] if index < len(self._segments) else None
                self._read_seq = nxt.first_seq if nxt is not None else self._next_seq
            segment.path.unlink(missing_ok=True)
            log.warning("spool full: dropped %d readings (oldest unsent segment)", segment.count)
            return True
        return False

    # -- reading -----------------------------------------------------------------

    def read(self, max_records: int, max_bytes: int = 4 << 20) -> list[SpoolRecord]:
        """The next records after the last ones returned, in order (flush first)."""
        self.flush()
        records: list[SpoolRecord] = []
        budget = max_bytes
        while len(records) < max_records and budget > 0:
            stream = self._reader_stream()
            segment = self._reader_segment
            if stream is None or segment is None:
                break
            if self._read_seq >= segment.end_seq:  # read through
                if not self._advance_reader():
                    break
                continue
            found = _read_record(stream)
            if found is None:  # the file ends before its records do: damaged after writing
                self._skip_corrupt(segment.end_seq - self._read_seq)
                stream.seek(0, os.SEEK_END)
                continue
            body, used = found
            if body is None:
                self._skip_corrupt(1)
                continue
            records.append(_decode_body(self._read_seq, body))
            self._read_seq += 1
            budget -= used
        return records

    def _skip_corrupt(self, count: int) -> None:
        log.warning("spool: skipped %d damaged records at seq %d", count, self._read_seq)
        self.corrupt += count
        self._read_seq += count

    def _reader_stream(self) -> BinaryIO | None:
        if self._reader is not None:
            return self._reader
        for segment in self._segments:
            if segment.first_seq <= self._read_seq < segment.end_seq or (
                segment is self._segments[-1] and segment.first_seq <= self._read_seq
            ):
                return self._open_reader(segment)
            if segment.first_seq > self._read_seq:  # the records in between were dropped
                self._read_seq = segment.first_seq
                return self._open_reader(segment)
        return None

    def _open_reader(self, segment: _Segment) -> BinaryIO:
        stream = segment.path.open("rb")
        for _ in range(self._read_seq - segment.first_seq):  # skip what was already read
            if _read_record(stream) is None:
                break
        self._reader, self._reader_segment = stream, segment
        return stream

    def _advance_reader(self) -> bool:
        """Move to the next segment once the current one is sealed and read through."""
        current = self._reader_segment
        if current is None or current is self._segments[-1] or self._read_seq < current.end_seq:
            return False
        self._close_reader()
        return self._reader_stream() is not None

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader, self._reader_segment = None, None

    def rewind(self, seq: int) -> None:
        """Read again from `seq` (records handed out but never sent)."""
        if seq < self._read_seq:
            self._close_reader()
            self._read_seq = max(seq, self._cursor)

    # -- acknowledging -------------------------------------------------------------

    def commit(self, seq: int) -> None:
        """Every record before `seq` is acknowledged: delete segments wholly before it."""
        if seq <= self._cursor:
            return
        self._cursor = seq
        while len(self._segments) > 1 and self._segments[0].end_seq <= seq:
            done = self._segments.pop(0)
            if self._reader_segment is done:
                self._close_reader()
            done.path.unlink(missing_ok=True)

    def save_cursor(self) -> None:
        """Persist the cursor (atomically) if it moved since the last save."""
        with self._cursor_lock:
            cursor = self._cursor
            if cursor == self._saved_cursor:
                return
            tmp = self.directory / f"{CURSOR_FILE}.tmp"
            with tmp.open("w") as stream:
                stream.write(f"{cursor}\n")
                stream.flush()
                os.fsync(stream.fileno())
            tmp.replace(self.directory / CURSOR_FILE)
            folder = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._saved_cursor = cursor

    def close(self) -> None:
        fsync_and_close(self.sync_handles())
        self.save_cursor()
        self._close_reader()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- recovery ------------------------------------------------------------------

    def _segment_path(self, first_seq: int) -> Path:
        return self.directory / f"{first_seq:020d}{SEGMENT_SUFFIX}"

    def _recover(self) -> None:
        cursor_path = self.directory / CURSOR_FILE
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._cursor = int(cursor_path.read_text().strip())
        self._saved_cursor = self._cursor
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            segment = _Segment(int(path.stem), path)
            self._scan(segment)
            if segment.end_seq <= self._cursor or segment.count == 0:
                path.unlink()
                continue
            self._segments.append(segment)
        last = self._segments[-1].end_seq if self._segments else 0
        self._next_seq = max(last, self._cursor)
        self._read_seq = self._cursor
        if self._segments:
            log.info(
                "spool: resuming with %d unacknowledged readings from seq %d",
                self.depth,
                self._cursor,
            )

    def _scan(self, segment: _Segment) -> None:
        with segment.path.open("r+b") as stream:
            while (found := _read_record(stream)) is not None:
                segment.count += 1
                segment.size += found[1]  # a damaged stretch keeps its seq; `read` counts it
            if stream.tell() != segment.size or segment.path.stat().st_size != segment.size:
                log.warning("spool: cutting a torn record off %s", segment.path.name)
                stream.truncate(segment.size)


def fsync_and_close(handles: list[int]) -> None:
    """Flush each descriptor's file to the disk, then close it (blocking: run in a thread)."""
    try:
        for handle in handles:
            os.fsync(handle)
    finally:
        for handle in handles:
            os.close(handle)
