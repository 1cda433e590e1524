"""Throw-away servers for fault tests: a test may stop and restart these at will.

The shared local stack must never be stopped by a test (other tests use it),
so outage tests start their own PostgreSQL or Kafka with the stack's own
components, on free loopback ports, with state in a temporary folder.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from ess_stack.components import Kafka, Postgres, Redis
from ess_stack.config import StackConfig
from ess_stack.minio import Minio, MinioConfig
from ess_stack.setup import create_topics, prepare_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DisposablePostgres:
    server: Postgres
    dsn: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@dataclass
class DisposableRedis:
    server: Redis
    url: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@dataclass
class DisposableKafka:
    server: Kafka
    bootstrap: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@contextmanager
def disposable_postgres(state_dir: Path, timescaledb: bool = True) -> Iterator[DisposablePostgres]:
    """A TimescaleDB server of its own with an `ess` database; removed afterwards.

    `timescaledb=False`: plain PostgreSQL (the extension's files are installed
    but not preloaded, so `CREATE EXTENSION timescaledb` fails as it would there).
    """
    port = free_port()
    cfg = StackConfig(state_dir=state_dir, db_local_port=port)
    server = Postgres(cfg, "local", port, timescaledb=timescaledb)
    server.provision()
    server.start()
    try:
        if timescaledb:
            asyncio.run(prepare_database(cfg, server.name, port))
        else:
            asyncio.run(_create_plain_database(cfg, port))
        yield DisposablePostgres(server, cfg.dsn(port))
    finally:
        server.stop()
        server.remove_data()


async def _create_plain_database(cfg: StackConfig, port: int) -> None:
    for attempt in range(60):
        try:
            admin = await asyncpg.connect(cfg.dsn(port, "postgres"), timeout=10)
            break
        except (OSError, asyncpg.CannotConnectNowError):
            if attempt == 59:
                raise
            await asyncio.sleep(0.5)
    try:
        await admin.execute(f'CREATE DATABASE "{cfg.db_name}"')
    finally:
        await admin.close()


@contextmanager
def disposable_kafka(state_dir: Path, prefix: str = "ess") -> Iterator[DisposableKafka]:
    """A single-node KRaft broker of its own with the pipeline topics under `prefix`."""
    cfg = StackConfig(
        state_dir=state_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        topic_partitions=3,
        kafka_heap="384m",
    )
    server = Kafka(cfg)
    server.provision()
    server.start()
    try:
        asyncio.run(create_topics(cfg, prefix))
        yield DisposableKafka(server, f"{cfg.host}:{cfg.kafka_port}")
    finally:
        server.stop()


@dataclass
class DisposableMinio:
    server: Minio

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def env_lines(self) -> list[str]:
        return self.server.env_lines()


@contextmanager
def disposable_minio(state_dir: Path) -> Iterator[DisposableMinio]:
    """A MinIO server of its own (the stack's cached binary) with the archive's bucket."""
    cfg = StackConfig(state_dir=state_dir)
    server = Minio(cfg, MinioConfig(port=free_port(), console_port=free_port()))
    server.provision()
    server.start()
    try:
        yield DisposableMinio(server)
    finally:
        server.stop()
        server.remove_data()


@contextmanager
def disposable_redis(state_dir: Path) -> Iterator[DisposableRedis]:
    """A redis-server of its own, not persisted: FLUSHALL or a restart empties it."""
    cfg = StackConfig(state_dir=state_dir, redis_port=free_port())
    server = Redis(cfg)
    server.provision()
    server.start()
    try:
        yield DisposableRedis(server, f"redis://{cfg.host}:{cfg.redis_port}/0")
    finally:
        server.stop()
