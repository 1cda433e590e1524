"""The on-disk spool: an append-only log of encoded readings, bounded by bytes.

Layout under the spool directory:

- `<first seq, 20 digits>.seg`: segment files of records, appended in order.
  A record is `[body length u32][crc32 u32][topic len u16][key len u16]
  topic key value`; the CRC finds a torn tail after a crash, which is cut off.
- `cursor`: the sequence number of the first record Kafka has not acknowledged.

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


def _read_record(stream: BinaryIO) -> tuple[bytes, int] | None:
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

    def sync_handle(self) -> int | None:
        """A duplicate descriptor of the active segment for `os.fsync` in a thread."""
        if self._writer is None:
            return None
        self.flush()
        return os.dup(self._writer.fileno())

    def _active_segment(self, incoming: int) -> _Segment:
        active = self._segments[-1] if self._segments and self._writer is not None else None
        if active is not None and active.size + incoming <= self.segment_bytes:
            return active
        if self._writer is not None:
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
        records: list[SpoolRecord] = []
        budget = max_bytes
        while len(records) < max_records and budget > 0:
            stream = self._reader_stream()
            if stream is None:
                break
            position = stream.tell()
            found = _read_record(stream)
            if found is None:
                stream.seek(position)
                if not self._advance_reader():
                    break
                continue
            body, used = found
            records.append(_decode_body(self._read_seq, body))
            self._read_seq += 1
            budget -= used
        return records

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
        if self._cursor == self._saved_cursor:
            return
        tmp = self.directory / f"{CURSOR_FILE}.tmp"
        tmp.write_text(f"{self._cursor}\n")
        tmp.replace(self.directory / CURSOR_FILE)
        self._saved_cursor = self._cursor

    def close(self) -> None:
        self.flush()
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
                segment.size += found[1]
            if stream.tell() != segment.size or segment.path.stat().st_size != segment.size:
                log.warning("spool: cutting a torn record off %s", segment.path.name)
                stream.truncate(segment.size)
