"""The collector's inventory reaches the registry of both clusters through Kafka: the
registrar publishes to the compacted topic, each cluster's follower upserts; a second
registration (a restart, later) moves nothing, and never un-retires a device."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from ess_collector.inventory import Inventory
from ess_collector.registration import Registrar, inventory_records
from ess_common.backoff import Backoff
from ess_common.settings import CommonSettings
from ess_common.topics import registry_topic
from ess_tables.registry_feed import RegistryFollower
from helpers.common import DatabaseFactory, unique
from helpers.gap import execute, fetch, pipeline

INVENTORY = Inventory.model_validate(
    {
        "sites": [
            {
                "id": "site7",
                "time_zone": "Asia/Seoul",
                "endpoints": [
                    {
                        "host": "127.0.0.1",
                        "devices": [
                            {"id": "site7/bank1", "unit": 1},
                            {"id": "site7/bank1/rack1", "unit": 2},
                            {"id": "site7/pcs1", "unit": 3},
                        ],
                    }
                ],
            }
        ]
    }
)


async def test_the_inventory_is_registered_in_both_clusters_via_kafka(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    async with pipeline(settings, topic_prefix, make_database, fleet=None) as clusters:
        stop = asyncio.Event()
        followers = [
            RegistryFollower(
                settings.kafka_bootstrap,
                topic_prefix,
                unique("registry"),
                partial(asyncpg.connect, dsn),
                Backoff(0.2, 1.0),
            )
            for dsn in (clusters.local, clusters.cloud)
        ]
        tasks = [asyncio.create_task(f.run(stop)) for f in followers]
        try:
            for at in (first, first + timedelta(minutes=30)):  # a start, then a restart
                registrar = Registrar(
                    settings.kafka_bootstrap,
                    topic_prefix,
                    inventory_records(INVENTORY, at),
                    Backoff(0.2, 1.0),
                )
                await asyncio.wait_for(registrar.run(stop), 60)
                assert registrar.registered
                if at == first:
                    for _ in range(200):
                        if all(f.applied >= 4 for f in followers):
                            break
                        await asyncio.sleep(0.1)
                    await execute(
                        clusters.cloud,
                        "UPDATE fleet_device SET retired_at = $2 WHERE device_id = $1",
                        "site7/pcs1",
                        first + timedelta(minutes=5),
                    )
            for _ in range(200):
                if all(f.applied >= 8 for f in followers):
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for dsn in (clusters.local, clusters.cloud):
            rows = await fetch(
                dsn,
                "SELECT device_id, site, table_name, commissioned_at, registered_by"
                " FROM fleet_device ORDER BY 1",
            )
            assert [tuple(r) for r in rows] == [
                ("site7/bank1", "site7", "bank", first, "collector"),
                ("site7/bank1/rack1", "site7", "rack", first, "collector"),
                ("site7/pcs1", "site7", "pcs", first, "collector"),
            ]
            zones = await fetch(dsn, "SELECT site, time_zone FROM fleet_site")
            assert [tuple(z) for z in zones] == [("site7", "Asia/Seoul")]
        retired = await fetch(
            clusters.cloud, "SELECT retired_at FROM fleet_device WHERE device_id = 'site7/pcs1'"
        )
        assert retired[0][0] == first + timedelta(minutes=5)  # a re-registration keeps it
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([registry_topic(topic_prefix)])
        finally:
            await admin.close()
