"""Where a reading lives in the archive: one partition per table, site and UTC day.

    table=rack/site=site1/date=2026-12-01/part-00000.parquet     analyst-sized parts (visible)
    table=rack/site=site1/date=2026-12-01/_manifest.json         the live files of the day
    _staging/table=rack/site=site1/date=2026-12-01/seg-<id>.parquet   segments, not rolled up yet

The visible folder holds only rolled-up parts with deterministic names, so a
reader that globs `table=*/site=*/date=*/*.parquet` (pandas, Spark, DuckDB,
BigQuery external tables) never sees a staging segment: names starting with
`_` are skipped by Hive-style readers. Paths are relative to the store's prefix.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ess_common.model import TABLES, Table

STAGING = "_staging"
MANIFEST = "_manifest.json"
_PREFIX_RE = re.compile(r"table=([a-z]+)/site=([a-z0-9][a-z0-9_-]{0,62})/date=(\d{4}-\d{2}-\d{2})")
_PART_RE = re.compile(r"part-(\d{5})\.parquet$")


@dataclass(frozen=True, order=True)
class PartitionDay:
    """One table's readings of one site on one UTC day."""

    table: Table
    site: str
    day: date

    @property
    def prefix(self) -> str:
        return f"table={self.table}/site={self.site}/date={self.day.isoformat()}"

    @property
    def manifest_path(self) -> str:
        return f"{self.prefix}/{MANIFEST}"

    @property
    def staging_prefix(self) -> str:
        return f"{STAGING}/{self.prefix}"

    def part_path(self, index: int) -> str:
        return f"{self.prefix}/part-{index:05d}.parquet"

    def segment_path(self, segment_id: str) -> str:
        return f"{self.staging_prefix}/seg-{segment_id}.parquet"

    @property
    def start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())


def partition_of(table: Table, site: str, ts: datetime) -> PartitionDay:
    return PartitionDay(table, site, ts.astimezone(UTC).date())


def parse_prefix(path: str) -> PartitionDay | None:
    """The partition-day a path belongs to (a part, a segment, a manifest), or None."""
    found = _PREFIX_RE.search(path)
    if found is None or found.group(1) not in TABLES:
        return None
    table = next(t for t in TABLES if t == found.group(1))
    return PartitionDay(table, found.group(2), date.fromisoformat(found.group(3)))


def part_index(path: str) -> int | None:
    found = _PART_RE.search(path)
    return int(found.group(1)) if found else None


def new_segment_id(now: datetime) -> str:
    """Time-ordered and unique across writers: `<UTC time>-<random>`."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(6)}"


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days that `[start, end)` touches."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
