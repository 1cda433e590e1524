"""An archived day against a cluster: slots only one of them holds, and restoring from the archive.

`compare_day` is `essctl archive verify`: per device, the slots the cluster
holds that the archive lacks (`missing`) and those the archive holds that
the cluster lacks (`extra`). `restore_*` copies exactly the slots a cluster
lacks from the archive with the clusters' own idempotent write (`write_rows`:
COPY + ON CONFLICT DO NOTHING), in chunks: running it again inserts nothing.
Used by `essctl archive restore` and by the gap detector once Kafka and the
other cluster cannot heal a gap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc

from ess_archive_layout.keys import DayKeys, bits_in_range, differences
from ess_archive_layout.layout import PartitionDay
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.schema import KEY_COLUMNS, arrow_to_rows
from ess_common.model import DeviceId, Table
from ess_tables.crosssync import SlotGap
from ess_tables.presence import presence
from ess_tables.writer import write_rows

DEFAULT_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class DayDiff:
    partition: PartitionDay
    archived: int  # slots in the archive
    present: int  # slots in the cluster
    missing: dict[str, int]  # device -> slots the cluster holds and the archive lacks (bits)
    extra: dict[str, int]  # device -> slots the archive holds and the cluster lacks (bits)

    @property
    def missing_slots(self) -> int:
        return sum(b.bit_count() for b in self.missing.values())

    @property
    def extra_slots(self) -> int:
        return sum(b.bit_count() for b in self.extra.values())


@dataclass
class RestoreTotals:
    missing: int = 0  # slots the cluster lacked that the archive holds
    copied: int = 0  # rows read from the archive and written
    inserted: int = 0  # of those, rows new in the cluster (the rest arrived meanwhile)
    days: list[str] = field(default_factory=list)

    def add(self, other: RestoreTotals) -> None:
        self.missing += other.missing
        self.copied += other.copied
        self.inserted += other.inserted
        self.days.extend(other.days)


Progress = Callable[[RestoreTotals], None]


async def archived_slots(reader: ArchiveReader, pd: PartitionDay) -> dict[str, int]:
    """Per device, the slots of `pd` the archive holds (bit i = day start + i s)."""
    day = await reader.read_day(pd, KEY_COLUMNS)
    keys = DayKeys(pd.start_s)
    keys.add_all(day.data["device_id"].to_pylist(), day.data["ts"].to_pylist())
    return keys.as_ints()


async def compare_day(reader: ArchiveReader, conn: asyncpg.Connection, pd: PartitionDay) -> DayDiff:
    ours = await archived_slots(reader, pd)
    theirs = await presence(conn, pd.table, pd.start, pd.end, site=pd.site)
    missing: dict[str, int] = {}
    extra: dict[str, int] = {}
    for device, only_ours, only_theirs in differences(ours, theirs):
        if only_ours:
            extra[device] = only_ours
        if only_theirs:
            missing[device] = only_theirs
    return DayDiff(
        pd,
        sum(b.bit_count() for b in ours.values()),
        sum(b.bit_count() for b in theirs.values()),
        missing,
        extra,
    )


def _rows_of(data: pa.Table, pd: PartitionDay, wanted: dict[str, int]) -> pa.Table:
    """The rows of `data` whose (device, second of the day) is set in `wanted`."""
    if not wanted or data.num_rows == 0:
        return data.slice(0, 0)
    devices = data["device_id"].to_pylist()
    seconds = pc.subtract(
        pc.divide(pc.cast(data["ts"], pa.int64()), 1_000_000), pd.start_s
    ).to_pylist()
    mask = [(wanted.get(d, 0) >> s) & 1 == 1 for d, s in zip(devices, seconds, strict=True)]
    return data.filter(pa.array(mask, pa.bool_()))


async def restore_day(
    reader: ArchiveReader,
    conn: asyncpg.Connection,
    pd: PartitionDay,
    start: datetime,
    end: datetime,
    *,
    devices: Collection[str] | None = None,
    dry_run: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> RestoreTotals:
    """Copy the slots of `pd` within `[start, end)` that the cluster lacks."""
    lo, hi = max(start, pd.start), min(end, pd.end)
    if lo >= hi:
        return RestoreTotals()
    ours = await archived_slots(reader, pd)
    theirs = await presence(conn, pd.table, pd.start, pd.end, site=pd.site)
    wanted: dict[str, int] = {}
    for device, bits in ours.items():
        if devices is not None and device not in devices:
            continue
        lack = bits_in_range(
            bits & ~theirs.get(device, 0), pd.start_s, int(lo.timestamp()), int(hi.timestamp())
        )
        if lack:
            wanted[device] = lack
    return await _copy(reader, conn, pd, wanted, dry_run=dry_run, chunk_rows=chunk_rows)


async def restore_gaps(
    reader: ArchiveReader,
    conn: asyncpg.Connection,
    table: Table,
    gaps: Sequence[SlotGap],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> RestoreTotals:
    """Copy the slots of `gaps` that the archive holds (those already in the cluster are
    skipped by the write)."""
    by_day: dict[PartitionDay, dict[str, int]] = defaultdict(dict)
    for gap in gaps:
        site = DeviceId.parse(gap.device).site
        second = gap.start_s
        while second < gap.end_s:
            day = datetime.fromtimestamp(second, UTC).date()
            pd = PartitionDay(table, site, day)
            upto = min(gap.end_s, pd.start_s + 86_400)
            bits = ((1 << (upto - second)) - 1) << (second - pd.start_s)
            by_day[pd][gap.device] = by_day[pd].get(gap.device, 0) | bits
            second = upto
    totals = RestoreTotals()
    for pd, wanted in sorted(by_day.items()):
        ours = await archived_slots(reader, pd)
        have = {d: b & ours.get(d, 0) for d, b in wanted.items() if b & ours.get(d, 0)}
        totals.add(await _copy(reader, conn, pd, have, dry_run=False, chunk_rows=chunk_rows))
    return totals


async def _copy(
    reader: ArchiveReader,
    conn: asyncpg.Connection,
    pd: PartitionDay,
    wanted: dict[str, int],
    *,
    dry_run: bool,
    chunk_rows: int,
) -> RestoreTotals:
    totals = RestoreTotals(missing=sum(b.bit_count() for b in wanted.values()))
    if totals.missing:
        totals.days.append(pd.prefix)
    if dry_run or not totals.missing:
        return totals
    rows = arrow_to_rows(_rows_of((await reader.read_day(pd)).data, pd, wanted), pd.site)
    for i in range(0, len(rows), chunk_rows):
        result = await write_rows(conn, pd.table, rows[i : i + chunk_rows])
        totals.copied += result.rows
        totals.inserted += result.inserted
    return totals
