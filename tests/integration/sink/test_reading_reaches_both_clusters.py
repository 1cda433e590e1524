"""A reading produced with the shared producer is consumed from real Kafka and
upserted into real hypertables on both clusters; doing it twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.kafka import ReadingProducer
from ess_common.model import TABLES, RackValues
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory, unique
from helpers.sink import counter_total, run_sink_until, sink_settings

# Recent enough for the sink's slot bounds (ESS_SINK_MAX_AGE_S, 30 days by default).
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


async def _counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    except asyncpg.UndefinedTableError:  # the sink has not migrated yet
        return {}
    finally:
        await conn.close()


async def test_readings_land_once_in_both_clusters_even_when_consumed_twice(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
) -> None:
    sent = list(readings(seed_fleet(), T0, seconds=3))
    async with ReadingProducer(settings.kafka_bootstrap, telemetry_prefix) as producer:
        for ack in [await producer.send(r) for r in sent]:
            await ack
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    probe = next(r for r in sent if r.device.key == "site2/bank2/rack8" and r.ts == T0)
    assert isinstance(probe.values, RackValues)

    for cluster in ("local", "cloud"):
        dsn = await make_database(cluster)

        async def all_rows(_: SinkService, dsn: str = dsn) -> bool:
            return await _counts(dsn) == expected

        first = await run_sink_until(
            sink_settings(settings, cluster, dsn, telemetry_prefix, unique("g")), all_rows
        )
        assert counter_total(first, "rows_written") == len(sent)

        # A second consumer group re-reads every message from offset 0.
        async def all_seen_again(service: SinkService) -> bool:
            return bool(counter_total(service, "duplicates") >= len(sent))

        second = await run_sink_until(
            sink_settings(settings, cluster, dsn, telemetry_prefix, unique("g")), all_seen_again
        )
        assert counter_total(second, "rows_written") == 0
        assert counter_total(second, "duplicates") == len(sent)
        assert await _counts(dsn) == expected

        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT * FROM rack WHERE device_id = $1 AND ts = $2", probe.device.key, T0
            )
            hypertables = await conn.fetchval(
                "SELECT count(*) FROM timescaledb_information.hypertables"
            )
        finally:
            await conn.close()
        assert row is not None
        assert (row["site"], row["bank_id"], row["rack_id"]) == ("site2", 2, 8)
        assert row["soc_pct"] == probe.values.soc_pct
        assert row["cell_v_min"] == probe.values.cell_v_min
        assert hypertables == len(TABLES)
