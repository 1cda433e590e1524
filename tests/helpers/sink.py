"""Running sinks in-process for tests, against real Kafka and real databases."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_common.clusters import Cluster
from ess_common.runner import Service
from ess_common.settings import CommonSettings
from ess_sink.bootstrap import bootstrap
from ess_sink.service import SinkService
from ess_sink.settings import SinkSettings


def sink_settings(
    base: CommonSettings, cluster: Cluster, dsn: str, prefix: str, group: str, **extra: object
) -> SinkSettings:
    dsn_field = "db_local_dsn" if cluster == "local" else "db_cloud_dsn"
    return SinkSettings.model_validate(
        {
            "kafka_bootstrap": base.kafka_bootstrap,
            dsn_field: SecretStr(dsn),
            "topic_prefix": prefix,
            "sink_cluster": cluster,
            "sink_group_id": group,
            "sink_batch_max_wait_s": 0.2,
            **extra,
        }
    )


async def run_sink_until(
    settings: SinkSettings, done: Callable[[SinkService], Awaitable[bool]], timeout_s: float = 60.0
) -> SinkService:
    """Run a sink until `done()` is true (checked every 0.2 s), then stop it cleanly."""
    return await run_until(bootstrap(settings, CollectorRegistry()), done, timeout_s)


S = TypeVar("S", bound=Service)


async def run_until(service: S, done: Callable[[S], Awaitable[bool]], timeout_s: float = 60.0) -> S:
    """Run a service in-process until `done()` is true (checked every 0.2 s), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while not await done(service):
            if task.done():
                task.result()  # surface the sink's own error
                raise AssertionError(f"{service.name} stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"{service.name} did not finish within {timeout_s}s")
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return service


def counter_total(service: Any, counter_name: str) -> float:
    """Sum of one of a service's counters (`service.metrics.<name>`) over all its labels."""
    counter = getattr(service.metrics, counter_name)
    return sum(
        float(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def sink_env(
    base: CommonSettings, cluster: Cluster, dsn: str, prefix: str, group: str, **extra: str
) -> dict[str, str]:
    """Environment of a `python -m ess_sink` process for one cluster of a test."""
    return {
        **os.environ,
        "ESS_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
        "ESS_SINK_CLUSTER": cluster,
        f"ESS_DB_{cluster.upper()}_DSN": dsn,
        "ESS_TOPIC_PREFIX": prefix,
        "ESS_SINK_GROUP_ID": group,
        "ESS_HTTP_PORT": "0",
        "ESS_SINK_BATCH_MAX_WAIT_S": "0.2",
        **extra,
    }


@dataclass
class SinkProcess:
    """A sink as a real process, for kill -9 and SIGTERM; output appended to `log_file`."""

    env: dict[str, str]
    log_file: Path
    module: str = "ess_sink"  # any service: `python -m <module>`
    name: str | None = None  # its `name` (default: sink-<ESS_SINK_CLUSTER>)
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    _log_offset: int = 0

    async def start(self) -> None:
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, stdout=log, stderr=log
            )
        self.starts += 1

    async def wait_started(self, timeout_s: float = 60.0) -> None:
        """Until the latest start logged "<name> started" (its signal handlers are in place)."""
        name = self.name or f"sink-{self.env['ESS_SINK_CLUSTER']}"
        marker = f"{name} started".encode()
        deadline = time.monotonic() + timeout_s
        while True:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                if marker in log.read():
                    return
            assert self.running, f"{name} exited during start; see {self.log_file}"
            assert time.monotonic() < deadline, f"{name} not started in {timeout_s}s"
            await asyncio.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no drain, no commit, no goodbye."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and the exit code (SIGKILL and an error if it does not stop in time)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"sink did not stop within {timeout_s}s of SIGTERM") from None
