"""Reading the archive: the partition-days that exist, and the live readings of one.

A partition-day's readings are its manifest's parts plus its segments that
no part's footer claims (`manifest.live_segments`): exactly what was
committed, each reading once, whether or not a roll-up was interrupted.
`essctl archive`, restores and the gap detector read through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from ess_archive_layout.layout import STAGING, PartitionDay, parse_prefix
from ess_archive_layout.manifest import Manifest, decode_manifest, live_segments
from ess_archive_layout.schema import arrow_schema, decode_parquet, folded_segments
from ess_archive_layout.store import ArchiveUnavailable, ObjectStore
from ess_common.model import TABLES, Table

MAX_READ_ATTEMPTS = 10


class _ListedFileMissingError(Exception):
    """A file the manifest lists is gone: a roll-up replaced it since."""


@dataclass(frozen=True)
class ManifestVersion:
    manifest: Manifest
    e_tag: str | None  # None: there is no manifest yet (an empty one stands in)


@dataclass(frozen=True)
class DayContents:
    manifest: Manifest
    data: pa.Table  # the live readings, parts first, then segments in manifest order
    files: tuple[str, ...]  # the objects read


class ArchiveReader:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def manifest(self, pd: PartitionDay) -> ManifestVersion:
        found = await self.store.get(pd.manifest_path)
        if found is None:
            return ManifestVersion(Manifest.empty(pd), None)
        try:
            return ManifestVersion(decode_manifest(found.data), found.e_tag)
        except ValueError as exc:
            raise ArchiveUnavailable(f"{pd.manifest_path} is not readable: {exc}") from None

    async def read_file(self, path: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        found = await self.store.get(path)
        return None if found is None else decode_parquet(found.data, columns)

    async def read_day(self, pd: PartitionDay, columns: Sequence[str] | None = None) -> DayContents:
        """The live readings of `pd` (`columns`: a subset, e.g. the key columns).

        A roll-up may delete segments between our reading the manifest and the files:
        then the manifest has changed, and the read starts again from the new one."""
        previous: str | None = None
        for _ in range(MAX_READ_ATTEMPTS):
            version = await self.manifest(pd)
            try:
                return await self._read(pd, version.manifest, columns)
            except _ListedFileMissingError as exc:
                if version.e_tag == previous:
                    raise ArchiveUnavailable(str(exc)) from None
                previous = version.e_tag
        raise ArchiveUnavailable(f"{pd.manifest_path}: changing faster than it can be read")

    async def _read(
        self, pd: PartitionDay, m: Manifest, columns: Sequence[str] | None
    ) -> DayContents:
        tables: list[pa.Table] = []
        folded: set[str] = set()
        files: list[str] = []
        for part in m.parts:
            data = await self._listed(part.path, columns)
            folded.update(folded_segments(data))
            tables.append(data)
            files.append(part.path)
        for seg in live_segments(m, folded):
            tables.append(await self._listed(seg.path, columns))
            files.append(seg.path)
        schema = arrow_schema(pd.table)
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        merged = (
            pa.concat_tables([_plain(t, schema) for t in tables])
            if tables
            else schema.empty_table()
        )
        return DayContents(m, merged, tuple(files))

    async def _listed(self, path: str, columns: Sequence[str] | None) -> pa.Table:
        data = await self.read_file(path, columns)
        if data is None:
            raise _ListedFileMissingError(f"{path} is listed but missing")
        return data

    async def partition_days(
        self,
        tables: Sequence[Table] = TABLES,
        site: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> list[PartitionDay]:
        """Partition-days with a folder in the archive, `start <= day < end` when given."""
        found: list[PartitionDay] = []
        for table in tables:
            sites = await self.store.folders(f"table={table}/")
            for site_folder in sites:
                if site is not None and not site_folder.endswith(f"/site={site}"):
                    continue
                for day_folder in await self.store.folders(site_folder + "/"):
                    pd = parse_prefix(day_folder)
                    if pd is None or (start and pd.day < start) or (end and pd.day >= end):
                        continue
                    found.append(pd)
        return sorted(found)

    async def staged_orphans(self, pd: PartitionDay, listed: set[str]) -> list[tuple[str, float]]:
        """Segments in `pd`'s staging folder that no manifest lists (a writer died between
        writing one and listing it), with their age reference (last modified)."""
        objects = await self.store.list_objects(pd.staging_prefix + "/")
        return [
            (o.path, o.last_modified_s)
            for o in objects
            if o.path not in listed and STAGING in o.path
        ]


def _plain(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Without the footer's metadata, in `schema`'s column order and types."""
    return data.select(list(schema.names)).cast(schema).replace_schema_metadata(None)
