"""What `up` does once the servers answer: databases, extensions and topics."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ess_common.topics import all_topics
from ess_stack.config import StackConfig
from ess_stack.errors import StackError

log = logging.getLogger(__name__)


async def prepare_database(cfg: StackConfig, name: str, port: int) -> str:
    """Create the `ess` database with the timescaledb extension; returns its version."""
    deadline = time.monotonic() + cfg.ready_timeout_s
    while True:
        try:
            admin = await asyncpg.connect(cfg.dsn(port, "postgres"), timeout=5)
            break
        except (OSError, asyncpg.PostgresError) as exc:
            if time.monotonic() > deadline:
                raise StackError(name, f"not accepting connections: {exc}") from None
            await asyncio.sleep(0.5)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", cfg.db_name)
        if not exists:
            # Identifier from our own validated config, quoted; CREATE DATABASE takes no params.
            await admin.execute(f'CREATE DATABASE "{cfg.db_name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(cfg.dsn(port), timeout=5)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        await _index_manager_extensions(conn, name)
        version: str = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        return version
    finally:
        await conn.close()


async def _index_manager_extensions(conn: asyncpg.Connection, name: str) -> None:
    """pg_stat_statements, pg_qualstats and hypopg where installed (and preloaded if needed)."""
    preloaded = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
    for ext in ("pg_stat_statements", "pg_qualstats", "hypopg"):
        available = await conn.fetchval(
            "SELECT 1 FROM pg_available_extensions WHERE name = $1", ext
        )
        if not available or (ext != "hypopg" and ext not in preloaded):
            log.warning("%s: %s is not available: `essctl index` works without it", name, ext)
            continue
        # The name comes from the fixed tuple above; CREATE EXTENSION takes no parameters.
        await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")


async def create_topics(
    cfg: StackConfig, prefix: str = "ess", bootstrap: str | None = None
) -> list[str]:
    """Create the pipeline's topics if missing; returns the names created now.

    `bootstrap` defaults to the local stack's broker; compose and Kubernetes
    pass their own (`python -m ess_stack topics`).
    """
    bootstrap = bootstrap or f"{cfg.host}:{cfg.kafka_port}"
    deadline = time.monotonic() + cfg.ready_timeout_s
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    while True:
        try:
            await admin.start()
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise StackError("kafka", f"admin client cannot connect: {exc}") from None
            await asyncio.sleep(1)
    try:
        created: list[str] = []
        while True:
            existing = set(await admin.list_topics())
            wanted = [t for t in all_topics(prefix) if t not in existing]
            if not wanted:
                return created
            if time.monotonic() > deadline:
                raise StackError("kafka", f"topics not created in time: {wanted}")
            configs = {"retention.ms": str(cfg.topic_retention_ms)}
            try:
                await admin.create_topics(
                    [NewTopic(t, cfg.topic_partitions, 1, topic_configs=configs) for t in wanted]
                )
                created.extend(wanted)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:  # controller not elected yet right after start
                log.debug("create_topics retry: %s", exc)
                await asyncio.sleep(1)
    finally:
        await admin.close()
