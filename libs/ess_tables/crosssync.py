"""Cross-cluster sync: copy the rows one cluster lacks from the other, idempotently.

The seed's daily migration job, done with the sink's own write path: compare
which slots each cluster holds (`presence`), turn the slots the target lacks
into runs per device, read exactly those rows from the source in bounded
chunks and write them with `write_rows` (COPY + ON CONFLICT DO NOTHING), so
running it again, or while the sinks are writing, changes nothing twice.
Ranges are cut into day slices so memory stays bounded whatever the range.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ess_common.db import quote_ident
from ess_common.model import TABLES, Table
from ess_tables.presence import presence
from ess_tables.rows import columns
from ess_tables.writer import write_rows

SLICE_S = 86400
DEFAULT_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class SlotGap:
    """Slots `[start_s, end_s)` (epoch seconds) of one device."""

    device: str
    start_s: int
    end_s: int

    @property
    def slots(self) -> int:
        return self.end_s - self.start_s


@dataclass
class SyncTotals:
    missing: int = 0  # slots the target lacked and the source had
    copied: int = 0  # rows read from the source and written
    inserted: int = 0  # of those, rows that were new in the target

    @property
    def already_present(self) -> int:
        return self.copied - self.inserted

    def add(self, other: SyncTotals) -> None:
        self.missing += other.missing
        self.copied += other.copied
        self.inserted += other.inserted


Progress = Callable[[SyncTotals], None]


def gaps_from_bits(device: str, origin_s: int, bits: int) -> list[SlotGap]:
    gaps: list[SlotGap] = []
    while bits:
        start = (bits & -bits).bit_length() - 1
        shifted = bits >> start
        length = (shifted ^ (shifted + 1)).bit_length() - 1
        gaps.append(SlotGap(device, origin_s + start, origin_s + start + length))
        bits &= ~(((1 << length) - 1) << start)
    return gaps


def slices(
    start: datetime, end: datetime, slice_s: int = SLICE_S
) -> Iterator[tuple[datetime, datetime]]:
    cursor = int(start.timestamp())
    stop = int(end.timestamp())
    while cursor < stop:
        nxt = min(stop, cursor - cursor % slice_s + slice_s)
        yield datetime.fromtimestamp(cursor, UTC), datetime.fromtimestamp(nxt, UTC)
        cursor = nxt


async def missing_gaps(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: Table,
    start: datetime,
    end: datetime,
    *,
    site: str | None = None,
    devices: Collection[str] | None = None,
) -> list[SlotGap]:
    """Runs of slots in `[start, end)` that `source` holds and `target` lacks (one slice)."""
    have = await presence(source, table, start, end, site=site, devices=devices)
    if not have:
        return []
    lack_from = await presence(target, table, start, end, site=site, devices=list(have))
    origin = int(start.timestamp())
    gaps: list[SlotGap] = []
    for device, bits in sorted(have.items()):
        gaps.extend(gaps_from_bits(device, origin, bits & ~lack_from.get(device, 0)))
    return gaps


def chunk_gaps(gaps: list[SlotGap], max_rows: int) -> Iterator[list[SlotGap]]:
    chunk: list[SlotGap] = []
    size = 0
    for gap in gaps:
        for lo in range(gap.start_s, gap.end_s, max_rows):
            piece = SlotGap(gap.device, lo, min(gap.end_s, lo + max_rows))
            if chunk and size + piece.slots > max_rows:
                yield chunk
                chunk, size = [], 0
            chunk.append(piece)
            size += piece.slots
    if chunk:
        yield chunk


def _select_gaps_sql(table: Table) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    cols = ", ".join(f"t.{quote_ident(c)}" for c in columns(table))
    return (
        f"SELECT {cols} FROM {quote_ident(table)} t"  # noqa: S608 - identifiers from TABLES only
        " JOIN unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS g(dev, lo, hi)"
        " ON t.device_id = g.dev AND t.ts >= g.lo AND t.ts < g.hi"
    )


async def copy_gaps(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: Table,
    gaps: list[SlotGap],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> SyncTotals:
    """Read the rows of `gaps` from `source` and upsert them into `target`, chunk by chunk."""
    totals = SyncTotals(missing=sum(g.slots for g in gaps))
    sql = _select_gaps_sql(table)
    for chunk in chunk_gaps(gaps, chunk_rows):
        rows = await source.fetch(
            sql,
            [g.device for g in chunk],
            [datetime.fromtimestamp(g.start_s, UTC) for g in chunk],
            [datetime.fromtimestamp(g.end_s, UTC) for g in chunk],
        )
        result = await write_rows(target, table, [tuple(r) for r in rows])
        totals.copied += result.rows
        totals.inserted += result.inserted
        if progress is not None:
            progress(totals)
    return totals


async def sync_range(
    source: asyncpg.Connection,
    target: asyncpg.Connection,
    table: Table,
    start: datetime,
    end: datetime,
    *,
    site: str | None = None,
    devices: Collection[str] | None = None,
    dry_run: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> SyncTotals:
    """Copy what `target` lacks of `[start, end)` from `source`, one day slice at a time."""
    totals = SyncTotals()
    for lo, hi in slices(start, end):
        gaps = await missing_gaps(source, target, table, lo, hi, site=site, devices=devices)
        if dry_run:
            totals.missing += sum(g.slots for g in gaps)
            if progress is not None:
                progress(totals)
            continue
        done = SyncTotals(missing=totals.missing, copied=totals.copied, inserted=totals.inserted)

        def report(step: SyncTotals, base: SyncTotals = done) -> None:
            if progress is not None:
                progress(
                    SyncTotals(
                        base.missing + step.missing,
                        base.copied + step.copied,
                        base.inserted + step.inserted,
                    )
                )

        totals.add(
            await copy_gaps(source, target, table, gaps, chunk_rows=chunk_rows, progress=report)
        )
    return totals
