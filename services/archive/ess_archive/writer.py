"""Making staged readings durable, and rolling a day's segments up into parts.

Flush, for each partition-day with staged readings (the service commits
Kafka offsets only after every one of them succeeded):

1. write one segment `_staging/.../seg-<time>-<random>.parquet` (create-only);
2. list it in the day's manifest: read, add, conditional PUT on the ETag
   (another writer's change in between: read again and redo).

A crash after 1 leaves an unlisted segment: not part of the archive, its
readings are read again from Kafka and written again; it is deleted once
older than `ESS_ARCHIVE_ORPHAN_AGE_S`. A crash after 2 leaves the readings
archived but their offsets uncommitted: they are read again and dropped as
duplicates (their slots are loaded from the archive).

Roll-up of one day (when its oldest segment is `ESS_ARCHIVE_ROLLUP_AFTER_S`
old, or the day is over): the open part (the last one, if it holds fewer
than `ESS_ARCHIVE_PART_ROWS`) is rewritten in place with the segments'
readings when they fit; otherwise the segments are packed in manifest order
into new parts of at most that size. Packing in order keeps each part's
content stable when a roll-up interrupted by a crash is redone (the same
part gets the same or more readings), so a reader listing the folder never
sees a reading in two parts. Each part's footer names the segments folded
into it; the manifest without them is stored next, then they are deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from ess_archive.metrics import ArchiveMetrics
from ess_archive_layout.keys import DayKeys
from ess_archive_layout.layout import PartitionDay, new_segment_id, part_index
from ess_archive_layout.manifest import FileEntry, Manifest, encode_manifest, live_segments
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.schema import (
    KEY_COLUMNS,
    conform,
    encode_parquet,
    first_of_each_key,
    folded_metadata,
    folded_segments,
    rows_to_arrow,
    ts_range_s,
)
from ess_archive_layout.store import ArchiveConflict, ArchiveUnavailable, ObjectStore
from ess_tables.wire_rows import Row

log = logging.getLogger(__name__)

MAX_MANIFEST_TRIES = 20
SEGMENTS_BEFORE_ROLLUP = 200  # a day with this many segments is rolled up whatever their age


@dataclass(frozen=True)
class RollupPolicy:
    part_rows: int
    after_s: float
    row_group_rows: int
    orphan_age_s: float


def rollup_due(manifest: Manifest, now_s: float, after_s: float) -> bool:
    """Segments to roll up: the oldest is old enough, there are many, or the day is over."""
    oldest = manifest.oldest_segment_s()
    if oldest is None:
        return False
    day_over = now_s >= manifest.partition.start_s + 86_400
    return day_over or now_s - oldest >= after_s or len(manifest.segments) >= SEGMENTS_BEFORE_ROLLUP


def pack_segments(segments: Sequence[FileEntry], part_rows: int) -> list[list[FileEntry]]:
    """Consecutive segments grouped into parts of at most `part_rows` (one larger
    segment makes a part of its own)."""
    groups: list[list[FileEntry]] = []
    size = 0
    for seg in segments:
        if groups and size + seg.rows <= part_rows:
            groups[-1].append(seg)
            size += seg.rows
        else:
            groups.append([seg])
            size = seg.rows
    return groups


def file_entry(path: str, data: pa.Table, size: int, folded: Sequence[str] = ()) -> FileEntry:
    lo, hi = ts_range_s(data)
    return FileEntry(
        path=path,
        rows=data.num_rows,
        bytes=size,
        devices=len(data["device_id"].unique()),
        min_ts=lo,
        max_ts=hi,
        created_s=int(time.time()),
        folded=tuple(folded),
    )


class ArchiveWriter:
    def __init__(
        self,
        store: ObjectStore,
        reader: ArchiveReader,
        metrics: ArchiveMetrics,
        policy: RollupPolicy,
    ) -> None:
        self.store = store
        self.reader = reader
        self.metrics = metrics
        self.policy = policy

    async def load_keys(self, pd: PartitionDay) -> DayKeys:
        """The slots `pd` already holds in the archive."""
        day = await self.reader.read_day(pd, KEY_COLUMNS)
        keys = DayKeys(pd.start_s)
        keys.add_all(day.data["device_id"].to_pylist(), day.data["ts"].to_pylist())
        return keys

    async def write_segment(self, pd: PartitionDay, rows: Sequence[Row]) -> FileEntry:
        data = first_of_each_key(rows_to_arrow(pd.table, rows))
        raw = encode_parquet(data, row_group_rows=self.policy.row_group_rows)
        path = pd.segment_path(new_segment_id(datetime.now(UTC)))
        await self.store.put(path, raw, create=True)
        self.metrics.segments.labels(pd.table).inc()
        self.metrics.bytes_written.labels(pd.table, "segment").inc(len(raw))
        return file_entry(path, data, len(raw))

    async def list_segment(self, pd: PartitionDay, entry: FileEntry) -> Manifest:
        """Make `entry` live in `pd`'s manifest (the commit point of its readings)."""
        for _ in range(MAX_MANIFEST_TRIES):
            current = await self.reader.manifest(pd)
            try:
                return await self._store_manifest(
                    pd, current.manifest.with_segments([entry]), current.e_tag
                )
            except ArchiveConflict:
                self.metrics.store_errors.labels("conflict").inc()
        raise ArchiveUnavailable(f"{pd.manifest_path}: too many concurrent changes")

    async def _store_manifest(
        self, pd: PartitionDay, manifest: Manifest, e_tag: str | None
    ) -> Manifest:
        raw = encode_manifest(manifest)
        if e_tag is None:
            await self.store.put(pd.manifest_path, raw, create=True)
        else:
            await self.store.put(pd.manifest_path, raw, if_match=e_tag)
        return manifest

    async def flush_day(self, pd: PartitionDay, rows: Sequence[Row]) -> int:
        entry = await self.write_segment(pd, rows)
        await self.list_segment(pd, entry)
        return entry.rows

    # -- roll-up ----------------------------------------------------------------------------

    async def rollup(self, pd: PartitionDay, force: bool = False) -> bool:
        """Roll `pd`'s segments up when due (or `force`); True when a manifest changed.
        A conflict (another writer changed the manifest) leaves it for the next check."""
        current = await self.reader.manifest(pd)
        m = current.manifest
        if not m.segments or not (force or rollup_due(m, time.time(), self.policy.after_s)):
            return False
        open_part = m.parts[-1] if m.parts and m.parts[-1].rows < self.policy.part_rows else None
        open_data = await self.reader.read_file(open_part.path) if open_part else None
        if open_part is not None and open_data is None:
            raise ArchiveUnavailable(f"{open_part.path} is listed but missing")
        already = set(folded_segments(open_data)) if open_data is not None else set()
        segs = live_segments(m, already)
        new_parts: list[FileEntry] = []
        if (
            open_part is not None
            and open_data is not None
            and open_part.rows + sum(s.rows for s in segs) <= self.policy.part_rows
        ):
            new_parts.append(await self._write_part(pd, open_part.path, [open_data], segs))
        elif segs:
            first = (part_index(m.parts[-1].path) or 0) + 1 if m.parts else 0
            for i, group in enumerate(pack_segments(segs, self.policy.part_rows)):
                new_parts.append(await self._write_part(pd, pd.part_path(first + i), [], group))
        folded = already | {s.path for s in segs}
        try:
            await self._store_manifest(pd, m.rolled_up(new_parts, folded), current.e_tag)
        except ArchiveConflict:
            self.metrics.rollups.labels(pd.table, "conflict").inc()
            return False
        await self.store.delete(sorted(folded))
        self.metrics.rollups.labels(pd.table, "done").inc()
        log.info(
            "rolled up %d segments of %s into %s",
            len(folded),
            pd.prefix,
            ", ".join(p.path.rsplit("/", 1)[1] for p in new_parts) or "nothing new",
        )
        return True

    async def _write_part(
        self, pd: PartitionDay, path: str, base: list[pa.Table], segments: Sequence[FileEntry]
    ) -> FileEntry:
        tables = [conform(pd.table, t) for t in base]
        for seg in segments:
            data = await self.reader.read_file(seg.path)
            if data is None:
                raise ArchiveUnavailable(f"{seg.path} is listed but missing")
            tables.append(conform(pd.table, data))
        merged = first_of_each_key(pa.concat_tables(tables))
        names = [s.path for s in segments]
        raw = encode_parquet(
            merged, folded_metadata(names), row_group_rows=self.policy.row_group_rows
        )
        await self.store.put(path, raw)
        self.metrics.bytes_written.labels(pd.table, "part").inc(len(raw))
        return file_entry(path, merged, len(raw), names)

    async def delete_orphans(self, pd: PartitionDay) -> int:
        """Delete staging segments of `pd` that no manifest lists and that are old enough
        that no writer can still be about to list them."""
        m = (await self.reader.manifest(pd)).manifest
        listed = {s.path for s in m.segments}
        cutoff = time.time() - self.policy.orphan_age_s
        orphans = [
            p for p, modified in await self.reader.staged_orphans(pd, listed) if modified < cutoff
        ]
        await self.store.delete(orphans)
        return len(orphans)
