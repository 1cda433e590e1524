"""Shared fixtures. Integration tests talk to the real servers of the local stack
(`make up`); each test gets its own topics and databases and removes them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ess_common.settings import CommonSettings, load_settings
from helpers.common import DatabaseFactory, TopicFactory, pipeline_topics, unique

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder is the tier: tests/unit -> unit, tests/integration -> integration, ..."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def settings() -> CommonSettings:
    """Connection settings of the running local stack; a clear failure when it is down."""
    loaded = load_settings(CommonSettings)
    endpoints = {
        "kafka": loaded.kafka_bootstrap.split(",")[0],
        "db-local": _host_port(loaded.db_local_dsn.get_secret_value()),
        "db-cloud": _host_port(loaded.db_cloud_dsn.get_secret_value()),
        "redis": _host_port(loaded.redis_url.get_secret_value()),
    }
    down = [name for name, hp in endpoints.items() if not _reachable(hp)]
    if down:
        pytest.fail(f"local stack not reachable ({', '.join(down)}): run `make up` first")
    return loaded


def _host_port(url: str) -> str:
    return url.rsplit("@", maxsplit=1)[-1].rsplit("://", maxsplit=1)[-1].split("/", maxsplit=1)[0]


def _reachable(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture
async def kafka_admin(settings: CommonSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@pytest.fixture
async def make_topic(kafka_admin: AIOKafkaAdminClient) -> AsyncIterator[TopicFactory]:
    """Create a uniquely named topic for this test; deleted afterwards."""
    created: list[str] = []

    async def make(name: str | None = None, partitions: int = 3) -> str:
        topic = name or unique("t").replace("_", ".")
        await kafka_admin.create_topics([NewTopic(topic, partitions, 1)])
        created.append(topic)
        return topic

    yield make
    if created:
        await kafka_admin.delete_topics(created)


@pytest.fixture
def topic_prefix() -> str:
    """A prefix so the test's telemetry topics are `<prefix>.telemetry.<table>`."""
    return unique("test").replace("_", "-")


@pytest.fixture
async def telemetry_prefix(settings: CommonSettings, topic_prefix: str) -> AsyncIterator[str]:
    """`topic_prefix` with the pipeline's topics created (3 partitions); deleted afterwards."""
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        yield topic_prefix


@pytest.fixture
async def make_database(settings: CommonSettings) -> AsyncIterator[DatabaseFactory]:
    """Create an empty database on a cluster ('local' or 'cloud'); dropped afterwards."""
    made: list[tuple[str, str]] = []

    def admin_dsn(cluster: str) -> str:
        dsn = settings.db_local_dsn if cluster == "local" else settings.db_cloud_dsn
        return dsn.get_secret_value().rsplit("/", 1)[0] + "/postgres"

    async def make(cluster: str) -> str:
        name = unique("test")
        conn = await asyncpg.connect(admin_dsn(cluster))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        made.append((cluster, name))
        return admin_dsn(cluster).rsplit("/", 1)[0] + f"/{name}"

    yield make
    for cluster, name in made:
        conn = await asyncpg.connect(admin_dsn(cluster))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
