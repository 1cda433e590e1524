"""The local stack's real servers are up and shaped as the pipeline expects."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ess_common.settings import CommonSettings
from ess_common.topics import all_topics


async def test_both_clusters_report_the_timescaledb_extension(settings: CommonSettings) -> None:
    for dsn in (settings.db_local_dsn, settings.db_cloud_dsn):
        conn = await asyncpg.connect(dsn.get_secret_value())
        try:
            version = await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            )
            preload = await conn.fetchval("SHOW shared_preload_libraries")
        finally:
            await conn.close()
        assert version is not None
        assert version.startswith("2.")
        assert "timescaledb" in preload


async def test_the_two_clusters_are_distinct_servers(settings: CommonSettings) -> None:
    ports = []
    for dsn in (settings.db_local_dsn, settings.db_cloud_dsn):
        conn = await asyncpg.connect(dsn.get_secret_value())
        try:
            ports.append(await conn.fetchval("SELECT inet_server_port()"))
            ports.append(await conn.fetchval("SELECT current_setting('data_directory')"))
        finally:
            await conn.close()
    assert ports[0] != ports[2]
    assert ports[1] != ports[3]


async def test_redis_answers_and_is_not_persisted(settings: CommonSettings) -> None:
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        assert await client.ping()
        config = await client.config_get("save")
        assert config["save"] == ""
    finally:
        await client.aclose()


async def test_pipeline_topics_exist_with_partitions_and_retention(
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    wanted = all_topics("ess")
    described = await kafka_admin.describe_topics(wanted)
    by_name = {d["topic"]: d for d in described}
    for topic in wanted:
        assert by_name[topic]["error_code"] == 0, topic
        assert len(by_name[topic]["partitions"]) == 6, topic
    configs = await kafka_admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, "ess.telemetry.rack")]
    )
    entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
    assert entries["retention.ms"] == str(7 * 24 * 3600 * 1000)
