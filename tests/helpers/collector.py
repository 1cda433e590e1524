"""Running the collector in-process against the real simulator and real Kafka.

`simulated_sites` starts the simulator (its Python API) on free ports;
`inventory_for` turns what it serves into the collector's inventory, using the
packaged register maps for vendor sites; `run_collector` runs the service
until told to stop; `read_telemetry` reads back everything in the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from ess_collector.bootstrap import bootstrap
from ess_collector.from_simulator import inventory_from_simulator
from ess_collector.inventory import Inventory
from ess_collector.service import CollectorService
from ess_collector.settings import CollectorSettings
from ess_common.codec import decode_reading
from ess_common.model import TABLES, Reading
from ess_common.topics import telemetry_topic
from ess_simulator.config import load_config
from ess_simulator.ports import free_port_block, port_free
from ess_simulator.simulator import Simulator


@dataclass
class Collected:
    """Readings the collector handed to its publisher, in order (the ground truth)."""

    readings: list[Reading] = field(default_factory=list)

    def slots_by_device(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for reading in self.readings:
            out.setdefault(reading.device.key, []).append(int(reading.ts.timestamp()))
        return out


@contextlib.asynccontextmanager
async def simulated_sites(
    *site_ids: str,
    framing: str = "tcp",
    serving: str = "pymodbus",
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Simulator]:
    """The default fleet's sites of these ids, on free ports, no HTTP control;
    `framing` of every site ("tcp" or "rtu"), `serving` mode, `clock`."""
    config = load_config(None)
    sites = [s.model_copy(update={"framing": framing}) for s in config.sites if s.id in site_ids]
    config = config.model_copy(
        update={"sites": sites, "base_port": 0, "control_port": None, "serving": serving}
    )
    async with Simulator(config, clock=clock) as simulator:
        yield simulator


def with_endpoint_settings(inventory: Inventory, **settings: Any) -> Inventory:
    """The inventory with these endpoint keys (requests_in_flight, ...) on every endpoint."""
    data = inventory.model_dump()
    for site in data["sites"]:
        for endpoint in site["endpoints"]:
            endpoint.update(settings)
    return Inventory.model_validate(data)


def inventory_for(simulator: Simulator) -> Inventory:
    """The collector's inventory for what the simulator serves right now."""
    return inventory_from_simulator(simulator.inventory())


def collector_settings(bootstrap: str, prefix: str, spool: Path, **extra: Any) -> CollectorSettings:
    return CollectorSettings.model_validate(
        {
            "kafka_bootstrap": bootstrap,
            "topic_prefix": prefix,
            "collector_spool_dir": spool,
            "collector_spool_max_bytes": 64 << 20,
            "collector_spool_segment_bytes": 1 << 20,
            "collector_request_timeout_s": 0.4,
            "drain_timeout_s": 30,
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def run_collector(
    settings: CollectorSettings, inventory: Inventory
) -> AsyncIterator[tuple[CollectorService, Collected]]:
    """Run the service in this loop; on exit stop it and wait for its drain."""
    collected = Collected()
    service = bootstrap(
        settings, CollectorRegistry(), inventory=inventory, observers=[collected.readings.append]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service, collected
        if task.done():
            task.result()
            raise AssertionError("the collector stopped by itself")
    finally:
        stop.set()
        await asyncio.wait_for(task, settings.drain_timeout_s + 15)


def published(service: CollectorService) -> float:
    """Readings Kafka acknowledged so far, from the service's own metrics."""
    return sum(
        service.registry.get_sample_value(
            "ess_collector_readings_published_total", {"table": table}
        )
        or 0.0
        for table in TABLES
    )


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.2)


async def read_telemetry(
    bootstrap: str, prefix: str, expected: int, timeout_s: float = 60
) -> list[tuple[bytes, Reading]]:
    """Every (key, reading) in the prefix's telemetry topics (read_committed), once
    `expected` messages arrived and nothing more came for two seconds."""
    consumer = AIOKafkaConsumer(
        *(telemetry_topic(t, prefix) for t in TABLES),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[tuple[bytes, Reading]] = []
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            for record in records:
                assert record.key is not None
                assert record.value is not None
                out.append((record.key, decode_reading(record.value, record.key)))
            if records:
                quiet_since = time.monotonic()
            elif len(out) >= expected and time.monotonic() - quiet_since > 2:
                break
    finally:
        await consumer.stop()
    return out


def slots_in_kafka(messages: Sequence[tuple[bytes, Reading]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for key, reading in messages:
        assert key.decode() == reading.device.key
        out.setdefault(reading.device.key, []).append(int(reading.ts.timestamp()))
    return {k: sorted(v) for k, v in out.items()}


# -- as processes (scale-out tests) --------------------------------------------------


@contextlib.contextmanager
def simulator_process(fleet: dict[str, Any], workdir: Path) -> Iterator[Inventory]:
    """`python -m ess_simulator run` on a fleet file (fixed base port); yields the
    collector inventory of what it serves; stopped (SIGTERM) at exit."""
    sites = len(fleet["sites"]) * int(fleet.get("scale", 1))
    fleet = {**fleet, "base_port": free_port_block(sites), "control_port": None}
    path = workdir / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    argv = [sys.executable, "-m", "ess_simulator"]
    listing = subprocess.run(
        [*argv, "inventory", "--config", str(path)], capture_output=True, check=True
    )
    inventory = inventory_from_simulator(yaml.safe_load(listing.stdout))
    with (workdir / "simulator.log").open("wb") as log:
        process = subprocess.Popen([*argv, "run", "--config", str(path)], stdout=log, stderr=log)
    try:
        last = fleet["base_port"] + sites - 1
        deadline = time.monotonic() + 30
        while port_free(last):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start; see {workdir / 'simulator.log'}")
            time.sleep(0.1)
        yield inventory
    finally:
        process.terminate()
        process.wait(10)


def write_inventory(inventory: Inventory, path: Path) -> Path:
    document = inventory.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass
class CollectorProcess:
    """`python -m ess_collector` with its own spool and /metrics port."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.env["ESS_HTTP_PORT"])

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ess_collector"], env=self.env, stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no drain, no leaving the group
        self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def metric(self, name: str) -> float | None:
        """One unlabelled sample of its /metrics, None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None
