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

from ess_stack.components import Kafka, Postgres
from ess_stack.config import StackConfig
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
class DisposableKafka:
    server: Kafka
    bootstrap: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@contextmanager
def disposable_postgres(state_dir: Path) -> Iterator[DisposablePostgres]:
    """A TimescaleDB server of its own with an `ess` database; removed afterwards."""
    port = free_port()
    cfg = StackConfig(state_dir=state_dir, db_local_port=port)
    server = Postgres(cfg, "local", port)
    server.provision()
    server.start()
    try:
        asyncio.run(prepare_database(cfg, server.name, port))
        yield DisposablePostgres(server, cfg.dsn(port))
    finally:
        server.stop()
        server.remove_data()


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
