"""The four servers of the local stack. Each: start (idempotent), stop (by PID), status."""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.procs import ManagedProcess, port_open, tail, wait_port
from ess_stack.provision import (
    PgRuntime,
    ensure_kafka,
    ensure_kafka_tools,
    ensure_postgres,
    ensure_redis,
    preload_libraries,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    name: str
    running: bool
    pid: int | None
    endpoint: str
    log_file: Path


class Component(Protocol):
    name: str

    def provision(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> bool: ...
    def status(self) -> Status: ...


def _claim_port(name: str, proc: ManagedProcess, host: str, port: int) -> bool:
    """True if ours is already running; error if a stranger holds the port."""
    if proc.pid() is not None:
        return True
    if port_open(host, port):
        raise StackError(
            name,
            f"port {host}:{port} is already taken by another process; "
            f"stop it or choose another port (ESS_STACK_* settings)",
        )
    return False


def await_ready(name: str, proc: ManagedProcess, host: str, port: int, timeout_s: float) -> None:
    if not wait_port(host, port, timeout_s, proc):
        died = proc.exited_early()
        proc.stop(timeout_s=5)
        what = "exited during start" if died else f"not ready within {timeout_s:.0f}s"
        raise StackError(name, f"{what}; last lines:\n{tail(proc.log_file)}", proc.log_file)


class Redis:
    name = "redis"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.binary = ""
        self.proc = ManagedProcess(
            self.name,
            cfg.state / "pids" / "redis.pid",
            cfg.state / "logs" / "redis.log",
            str(cfg.redis_port),
        )

    def provision(self) -> None:
        self.binary = ensure_redis(self.cfg)

    def start(self) -> None:
        if _claim_port(self.name, self.proc, self.cfg.host, self.cfg.redis_port):
            return
        # Not persisted: the cache is rebuilt from TimescaleDB by design.
        self.proc.start(
            [
                self.binary or "redis-server",
                "--bind",
                self.cfg.host,
                "--port",
                str(self.cfg.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                str(self.cfg.state),
            ]
        )
        await_ready(
            self.name, self.proc, self.cfg.host, self.cfg.redis_port, self.cfg.ready_timeout_s
        )

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGTERM)

    def status(self) -> Status:
        return Status(
            self.name,
            self.proc.pid() is not None,
            self.proc.pid(),
            f"redis://{self.cfg.host}:{self.cfg.redis_port}",
            self.proc.log_file,
        )


class Kafka:
    name = "kafka"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.home = cfg.state / "kafka"
        self.props = self.home / "server.properties"
        self.libs = cfg.cache_dir / f"kafka-{cfg.kafka_version}" / "libs"
        self.proc = ManagedProcess(
            self.name,
            cfg.state / "pids" / "kafka.pid",
            cfg.state / "logs" / "kafka.log",
            str(self.props),
        )

    def provision(self) -> None:
        self.libs = ensure_kafka(self.cfg)
        ensure_kafka_tools(self.cfg)  # `make kafka ARGS=...` (ess_stack.kafka_tools)

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            f"-Xmx{self.cfg.kafka_heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-Djava.awt.headless=true",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _write_config(self) -> None:
        c = self.cfg
        self.home.mkdir(parents=True, exist_ok=True)
        self.props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={c.host}:{c.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{c.host}:{c.kafka_port},"
                    f"CONTROLLER://{c.host}:{c.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://{c.host}:{c.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.home / 'data'}",
                    f"num.partitions={c.topic_partitions}",
                    f"log.retention.ms={c.topic_retention_ms}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "delete.topic.enable=true",
                    "log.segment.bytes=67108864",
                    "",
                ]
            )
        )
        (self.home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = error",
                    "appender.out.type = Console",
                    "appender.out.name = OUT",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = warn",
                    "rootLogger.appenderRef.out.ref = OUT",
                    "logger.kafka.name = kafka.server.KafkaRaftServer",
                    "logger.kafka.level = info",
                    "",
                ]
            )
        )

    def start(self) -> None:
        c = self.cfg
        if _claim_port(self.name, self.proc, c.host, c.kafka_port):
            return
        self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster_id}",  # an id may start with '-'
                    "-c",
                    str(self.props),
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                self.proc.log_file.parent.mkdir(parents=True, exist_ok=True)
                self.proc.log_file.write_text(fmt.stdout + fmt.stderr)
                raise StackError(self.name, "formatting KRaft storage failed", self.proc.log_file)
        self.proc.start(self._java("kafka.Kafka", str(self.props)))
        await_ready(self.name, self.proc, c.host, c.kafka_port, c.ready_timeout_s)

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGTERM, timeout_s=60)

    def status(self) -> Status:
        return Status(
            self.name,
            self.proc.pid() is not None,
            self.proc.pid(),
            f"{self.cfg.host}:{self.cfg.kafka_port}",
            self.proc.log_file,
        )


class Postgres:
    """One TimescaleDB server; the stack runs two ('db-local' and 'db-cloud').

    `timescaledb=False` starts the same PostgreSQL without the extension
    preloaded: a plain server, for tests of the non-Timescale path.
    """

    def __init__(self, cfg: StackConfig, cluster: str, port: int, timescaledb: bool = True) -> None:
        self.cfg = cfg
        self.name = f"db-{cluster}"
        self.port = port
        self.timescaledb = timescaledb
        self.runtime: PgRuntime | None = None
        self.proc = ManagedProcess(
            self.name,
            cfg.state / "pids" / f"{self.name}.pid",
            cfg.state / "logs" / f"{self.name}.log",
            f"cluster_name=ess-{cfg.instance}-{self.name}",
        )

    def provision(self) -> None:
        self.runtime = ensure_postgres(self.cfg)

    def _datadir(self, rt: PgRuntime) -> str:
        if rt.chrooted:  # the server sees only the chroot, so its data lives there
            return f"/ess/{self.cfg.instance}/{self.name}"
        return str(self.cfg.state / self.name)

    def start(self) -> None:
        if _claim_port(self.name, self.proc, self.cfg.host, self.port):
            return
        rt = self.runtime or ensure_postgres(self.cfg)
        datadir = self._datadir(rt)
        host_dir = rt.host_path(datadir)
        if not (host_dir / "PG_VERSION").exists():
            self._initdb(rt, datadir, host_dir)
        argv = rt.command(
            f"{rt.bindir}/postgres",
            "-D",
            datadir,
            "-c",
            f"port={self.port}",
            "-c",
            f"listen_addresses={self.cfg.host}",
            "-c",
            "unix_socket_directories=",
            "-c",
            f"cluster_name=ess-{self.cfg.instance}-{self.name}",
            *self._preload_options(rt),
            "-c",
            "dynamic_shared_memory_type=mmap",  # no /dev/shm inside a plain chroot
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "max_locks_per_transaction=256",
            "-c",
            "max_worker_processes=24",
            # A disposable dev/test stack: durability against power loss is not needed here.
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "logging_collector=off",
            "-c",
            "log_min_messages=warning",
        )
        self.proc.start(argv)
        await_ready(self.name, self.proc, self.cfg.host, self.port, self.cfg.ready_timeout_s)

    def _preload_options(self, rt: PgRuntime) -> list[str]:
        """timescaledb, pg_stat_statements and pg_qualstats: those whose module is installed."""
        libs = preload_libraries(rt, self.timescaledb)
        options = ["-c", f"shared_preload_libraries={','.join(libs)}"]
        if "timescaledb" in libs:
            options += ["-c", "timescaledb.telemetry_level=off"]
            options += ["-c", "timescaledb.max_background_workers=8"]
        if "pg_qualstats" in libs:  # its default samples 1/max_connections of the queries
            options += ["-c", "pg_qualstats.sample_rate=1"]
        return options

    def restart(self) -> None:
        """Stop (fast shutdown) and start again, e.g. to load new preload libraries."""
        self.stop()
        self.start()

    def _initdb(self, rt: PgRuntime, datadir: str, host_dir: Path) -> None:
        host_dir.mkdir(parents=True, exist_ok=True)
        rt.chown_to_postgres(datadir)
        init = subprocess.run(
            rt.command(
                f"{rt.bindir}/initdb",
                "-D",
                datadir,
                "-U",
                self.cfg.db_user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            self.proc.log_file.parent.mkdir(parents=True, exist_ok=True)
            self.proc.log_file.write_text(init.stdout + init.stderr)
            raise StackError(self.name, "initdb failed", self.proc.log_file)
        link = self.cfg.state / self.name
        if rt.chrooted and not link.exists():
            link.symlink_to(host_dir)

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGINT, timeout_s=60)  # SIGINT = fast shutdown

    def remove_data(self) -> None:
        """Delete this server's data directory (it must be stopped)."""
        rt = self.runtime or ensure_postgres(self.cfg)
        shutil.rmtree(rt.host_path(self._datadir(rt)), ignore_errors=True)
        link = self.cfg.state / self.name
        if link.is_symlink():
            link.unlink()

    def status(self) -> Status:
        return Status(
            self.name,
            self.proc.pid() is not None,
            self.proc.pid(),
            self.cfg.dsn(self.port),
            self.proc.log_file,
        )
