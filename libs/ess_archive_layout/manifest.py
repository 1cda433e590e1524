"""The manifest of a partition-day: which files are live, and what each holds.

The manifest is the commit point of the archive. A staging segment becomes
part of the archive when a manifest that lists it is stored (a conditional
PUT on the manifest's ETag, so two writers never lose each other's entries);
only then are the Kafka offsets of its readings committed. A roll-up writes
parts that record, in their Parquet footer, the segments folded into them
(`folded`), then stores a manifest without those segments, then deletes
them. After a crash between those steps the footers say which listed
segments are already inside a part (`live_segments`), so no reading is
counted twice, and the next roll-up repairs the manifest.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ess_archive_layout.layout import PartitionDay
from ess_common.model import Table

VERSION = 1


class FileEntry(BaseModel):
    """One Parquet object of a partition-day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    devices: int = Field(ge=0)
    min_ts: int  # epoch seconds of the first and last slot it holds
    max_ts: int
    created_s: int  # when it was written (epoch seconds)
    folded: tuple[str, ...] = ()  # parts only: the segments rolled up into it


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = VERSION
    table: Table
    site: str
    date: date
    generation: int = 0  # +1 at every change: a cheap "did anything change" for readers
    parts: tuple[FileEntry, ...] = ()
    segments: tuple[FileEntry, ...] = ()

    @classmethod
    def empty(cls, pd: PartitionDay) -> Manifest:
        return cls(table=pd.table, site=pd.site, date=pd.day)

    @property
    def partition(self) -> PartitionDay:
        return PartitionDay(self.table, self.site, self.date)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in (*self.parts, *self.segments))

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in (*self.parts, *self.segments))

    @property
    def staged_rows(self) -> int:
        return sum(f.rows for f in self.segments)

    def oldest_segment_s(self) -> int | None:
        return min((f.created_s for f in self.segments), default=None)

    def with_segments(self, added: Iterable[FileEntry]) -> Manifest:
        """This manifest with `added` segments live (a segment listed twice stays once)."""
        known = {f.path for f in self.segments}
        fresh = tuple(f for f in added if f.path not in known)
        return self.model_copy(
            update={"segments": self.segments + fresh, "generation": self.generation + 1}
        )

    def rolled_up(self, parts: Iterable[FileEntry], folded: Collection[str]) -> Manifest:
        """Parts (re)written by a roll-up replace those of the same path; `folded` segments
        leave the manifest."""
        new = {p.path: p for p in parts}
        kept = tuple(p for p in self.parts if p.path not in new)
        merged = tuple(sorted((*kept, *new.values()), key=lambda p: p.path))
        return self.model_copy(
            update={
                "parts": merged,
                "segments": tuple(s for s in self.segments if s.path not in folded),
                "generation": self.generation + 1,
            }
        )


def live_segments(manifest: Manifest, folded_in_parts: Collection[str]) -> tuple[FileEntry, ...]:
    """Segments still holding readings of their own: listed, and not folded into a part."""
    return tuple(s for s in manifest.segments if s.path not in folded_in_parts)


def encode_manifest(manifest: Manifest) -> bytes:
    return orjson.dumps(manifest.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


def decode_manifest(raw: bytes) -> Manifest:
    """Raises ValueError on anything that is not a manifest of this version."""
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise ValueError(f"not a version {VERSION} archive manifest")
    return Manifest.model_validate(doc)
