"""A run of the pipeline: both sinks and the archive read the same topics; afterwards the
archive of every table, site and UTC day holds exactly the clusters' rows (verify finds
nothing), and pyarrow reading the bucket as an analyst would gets the stored values and types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pyarrow as pa
from prometheus_client import CollectorRegistry

from ess_archive.bootstrap import bootstrap as archive_bootstrap
from ess_archive.service import ArchiveService
from ess_archive_layout.compare import compare_day
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.schema import TIMESTAMP, arrow_schema
from ess_archive_layout.store import ArchiveStore
from ess_common.kafka import ReadingProducer
from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from ess_tables.rows import columns
from helpers.archive import archive_settings, private_prefix, read_table_as_analyst
from helpers.common import DatabaseFactory, unique
from helpers.sink import counter_total, run_sink_until, run_until, sink_settings
from helpers.sinkdata import messages, produce, row_count

SLOTS = 240  # around a UTC midnight: every site and table has two days


async def test_archive_holds_exactly_the_clusters_rows(
    settings: CommonSettings, telemetry_prefix: str, make_database: DatabaseFactory
) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    batch = messages(
        readings(seed_fleet(), midnight - timedelta(seconds=SLOTS // 2), SLOTS), telemetry_prefix
    )
    async with ReadingProducer(settings.kafka_bootstrap, telemetry_prefix) as producer:
        produced = await produce(producer, batch)
    dsns = {c: await make_database(c) for c in ("local", "cloud")}

    async with private_prefix() as store:
        archive = archive_bootstrap(
            archive_settings(settings, store, telemetry_prefix, unique("g-archive")),
            CollectorRegistry(),
        )

        async def archived(service: ArchiveService) -> bool:
            return counter_total(service, "rows_archived") >= produced

        def sink_done(dsn: str) -> Callable[[SinkService], Awaitable[bool]]:
            async def done(_: SinkService) -> bool:
                return await row_count(dsn) >= produced

            return done

        await asyncio.gather(
            run_until(archive, archived, timeout_s=120),
            *(
                run_sink_until(
                    sink_settings(settings, c, dsns[c], telemetry_prefix, unique(f"g-{c}")),
                    sink_done(dsns[c]),
                    timeout_s=120,
                )
                for c in ("local", "cloud")
            ),
        )
        assert counter_total(archive, "rows_archived") == produced
        assert await archive.rollups(force=True) > 0  # segments into analyst-visible parts

        reader = ArchiveReader(ArchiveStore(store))
        days = await reader.partition_days()
        sites = {d.site for d in seed_fleet().devices()}
        assert {(d.table, d.site) for d in days} == {(t, s) for t in TABLES for s in sites}
        assert len({d.day for d in days}) == 2
        archived_rows = 0
        for cluster, dsn in dsns.items():
            conn = await asyncpg.connect(dsn)
            try:
                for pd in days:
                    diff = await compare_day(reader, conn, pd)
                    assert (diff.missing_slots, diff.extra_slots) == (0, 0), (cluster, pd)
                    assert diff.archived == diff.present > 0
                    archived_rows += diff.archived if cluster == "local" else 0
                    manifest = (await reader.manifest(pd)).manifest
                    assert manifest.segments == ()
                    assert len(manifest.parts) == 1
            finally:
                await conn.close()
        assert archived_rows == produced

        conn = await asyncpg.connect(dsns["local"])
        try:
            for table in TABLES:
                seen = read_table_as_analyst(store, table)
                for field in arrow_schema(table):  # the files' typed schema, as stored
                    assert seen.schema.field(field.name).type == field.type, (table, field)
                assert seen.schema.field("ts").type == TIMESTAMP
                assert seen.schema.field("quality").type == pa.int16()
                cols = list(columns(table))
                stored = await conn.fetch(
                    f"SELECT {', '.join(cols)} FROM {table} ORDER BY device_id, ts"
                )
                got = seen.select(cols).sort_by([("device_id", "ascending"), ("ts", "ascending")])
                assert got.num_rows == len(stored)
                assert got.to_pylist() == [dict(r) for r in stored]
        finally:
            await conn.close()
