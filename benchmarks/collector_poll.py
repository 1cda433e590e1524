"""Benchmark: the collector's 1 Hz polling of thousands of devices, against raw pymodbus.

    python benchmarks/collector_poll.py [--scale 25] [--seconds 30] [--simulators 2]

Needs the local stack's Kafka (`make up`); without it the readings wait in the
spool and the output says so. Writes bench-results/collector.json.

The seed fleet repeated `scale` times (58 devices per copy: banks, racks, PCS,
meters; a quarter of the sites speak the vendor register map) is served by
`simulators` simulator processes (`python -m ess_simulator run`). In this
process, one after the other, over the same devices and the same registers:

1. the collector (`CollectorService`: planning, SunSpec discovery, decoding,
   readings, spool, Kafka with acks=all) polls for a warm-up, then for
   `seconds`; counted: readings per slot, lateness (read_at - slot),
   overruns, CPU seconds of this process; then it stops and drains;
2. the same with Kafka unreachable (an address nobody listens on): readings
   only go to the spool, which separates the cost of polling from the cost of
   publishing (the local Kafka broker runs on the same cores);
3. the baseline: one pymodbus `AsyncModbusTcpClient` per site, at every
   wall-clock second the same reads the collector planned for each device
   (after its discovery), sequential per site, concurrent across sites, with
   no decoding and no publishing; counted the same way.

Reported: devices polled per second (complete polls whose slot lies in the
measured window / its length), lateness percentiles, CPU per 1,000 device
polls, and the ratios collector / baseline. The simulators' own CPU is
reported too: on a 2-core machine they are the ceiling of both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ess_collector.bootstrap import bootstrap
from ess_collector.from_simulator import inventory_from_simulator
from ess_collector.inventory import Inventory
from ess_collector.planning import ReadRequest, Space
from ess_collector.settings import CollectorSettings
from ess_common.model import Reading
from ess_common.settings import CommonSettings, load_settings
from ess_common.topics import all_topics
from ess_simulator.ports import free_port_block, port_free

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results" / "collector.json"
WARMUP_S = 8
MODULES_PER_RACK = 2
DEVICES_PER_COPY = 58


def _log(msg: str) -> None:
    print(f"[collector-bench] {msg}", file=sys.stderr, flush=True)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 4)}


# -- the simulators -----------------------------------------------------------------


@dataclass
class Simulators:
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    inventories: list[dict[str, Any]] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def start_simulators(
    scale: int, count: int, workdir: Path, *, serving: str = "pymodbus", cpus: str | None = None
) -> Simulators:
    """`count` processes, each serving its share of `scale` copies of the seed fleet
    (`serving` mode; pinned to `cpus` with taskset when given)."""
    sims = Simulators()
    shares = [scale // count + (1 if i < scale % count else 0) for i in range(count)]
    for index, share in enumerate(s for s in shares if s):
        sites = 4 * share
        base_port = free_port_block(sites)
        fleet = workdir / f"fleet-{index}.yaml"
        sites_list = [
            {"id": f"s{index}site1", "banks": {"bank1": 8}},
            {"id": f"s{index}site2", "banks": {"bank1": 9, "bank2": 8}},
            {"id": f"s{index}site3", "banks": {"bank1": 11}},
            {"id": f"s{index}site4", "banks": {"bank1": 9}, "protocol": "vendor"},
        ]
        fleet.write_text(
            yaml.safe_dump(
                {
                    "seed": 42 + index,
                    "scale": share,
                    "base_port": base_port,
                    "control_port": None,
                    "serving": serving,
                    # Fewer modules per rack make the simulator cheaper (its per-second
                    # images carry every module); the reads polled are the same.
                    "battery": {"modules_per_rack": MODULES_PER_RACK},
                    "sites": sites_list,
                }
            )
        )
        argv = [sys.executable, "-m", "ess_simulator"]
        listing = subprocess.run(
            [*argv, "inventory", "--config", str(fleet)], capture_output=True, check=True
        )
        sims.inventories.append(yaml.safe_load(listing.stdout))
        log = (workdir / f"simulator-{index}.log").open("wb")
        pin = ["taskset", "-c", cpus] if cpus else []
        sims.processes.append(
            subprocess.Popen(
                [*pin, *argv, "run", "--config", str(fleet), "--log-level", "WARNING"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        last_port = base_port + sites - 1
        deadline = time.monotonic() + 60
        while port_free(last_port):
            if time.monotonic() > deadline or sims.processes[-1].poll() is not None:
                sims.stop()
                raise RuntimeError(f"simulator {index} did not start; see {log.name}")
            time.sleep(0.2)
    return sims


def merged_inventory(sims: Simulators) -> Inventory:
    sites = [site for doc in sims.inventories for site in doc["sites"]]
    return inventory_from_simulator({"sites": sites})


# -- phase 1: the collector -----------------------------------------------------------


@dataclass
class Phase:
    name: str
    devices: int
    window_s: int
    polls: int = 0
    lateness_s: list[float] = field(default_factory=list)
    overruns: int = 0
    cpu_s: float = 0.0
    simulator_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        per_second = self.polls / self.window_s
        return {
            "devices": self.devices,
            "window_s": self.window_s,
            "devices_polled_per_s": round(per_second, 1),
            "share_of_slots_polled": round(per_second / self.devices, 4),
            "lateness_s": _percentiles(self.lateness_s),
            "overruns": self.overruns,
            "cpu_s_per_1000_polls": round(1000 * self.cpu_s / max(self.polls, 1), 3),
            "cpu_cores_used": round(self.cpu_s / self.window_s, 2),
            "simulator_cores_used": round(self.simulator_cpu_s / self.window_s, 2),
        }


async def run_collector(
    inventory: Inventory,
    sims: Simulators,
    *,
    seconds: int,
    kafka: str,
    prefix: str,
    spool: Path,
    drain_s: float = 40,
    devices_out: list[Any] | None = None,
) -> tuple[Phase, dict[str, list[ReadRequest]], dict[str, Any]]:
    """The whole service; `kafka` may be an address nobody listens on (spool only);
    `devices_out` receives the service's devices (their layouts, after discovery)."""
    settings = CollectorSettings.model_validate(
        {
            "kafka_bootstrap": kafka,
            "topic_prefix": prefix,
            "collector_spool_dir": spool,
            "collector_spool_max_bytes": 512 << 20,
            "drain_timeout_s": drain_s,
            "collector_spool_segment_bytes": 16 << 20,
            "log_level": "WARNING",
        }
    )
    # (slot, read_at) only: keeping every Reading would grow the heap the garbage
    # collector walks, and its pauses would show up as the collector's lateness.
    readings: list[tuple[int, float]] = []

    def observe(reading: Reading) -> None:
        readings.append((int(reading.ts.timestamp()), reading.read_at.timestamp()))

    service = bootstrap(settings, CollectorRegistry(), inventory=inventory, observers=[observe])
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.sleep(WARMUP_S)
    first_slot = math.floor(time.time()) + 1
    await asyncio.sleep(first_slot - time.time())
    overruns_before = sum(e.overruns for e in service.endpoints)
    cpu_before, sim_before = time.process_time(), sims.cpu_seconds()
    await asyncio.sleep(seconds)
    cpu, sim = time.process_time() - cpu_before, sims.cpu_seconds() - sim_before
    last_slot = first_slot + seconds - 1
    await asyncio.sleep(1.5)  # polls of the last slot finish
    phase = Phase("collector", len(inventory.devices()), seconds, cpu_s=cpu, simulator_cpu_s=sim)
    phase.overruns = sum(e.overruns for e in service.endpoints) - overruns_before
    for slot, read_at in readings:
        if first_slot <= slot <= last_slot:
            phase.polls += 1
            phase.lateness_s.append(read_at - slot)
    plans = {d.key: list(d.requests) for d in service.devices()}
    if devices_out is not None:
        devices_out.extend(service.devices())
    failures = {
        s.labels["reason"]: s.value
        for metric in service.registry.collect()
        if metric.name == "ess_collector_poll_failures"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    stop.set()  # polling stops; the service drains its spool to Kafka before returning
    await asyncio.wait_for(task, settings.drain_timeout_s + 30)
    publishing = {
        "failures_by_reason": failures,
        "kafka_acked_all_after_stop": service.spool.depth == 0,
        "spool_depth_after_stop": service.spool.depth,
        "readings_total": len(readings),
    }
    return phase, plans, publishing


# -- phase 2: the baseline -----------------------------------------------------------


class BareReader(Protocol):
    """One endpoint's connection for bare reads: True if every read of a device answered."""

    async def poll(self, unit: int, requests: list[ReadRequest]) -> bool: ...

    async def close(self) -> None: ...


BareConnect = Callable[[str, int], Awaitable[BareReader]]


class PymodbusReader:
    """pymodbus's client: no retries, the collector's timeout, reconnect off."""

    def __init__(self, client: AsyncModbusTcpClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, host: str, port: int) -> PymodbusReader:
        client = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0, reconnect_delay=0)
        await client.connect()
        return cls(client)

    async def poll(self, unit: int, requests: list[ReadRequest]) -> bool:
        return await _poll_ok(self.client, unit, requests)

    async def close(self) -> None:
        self.client.close()


async def run_baseline(
    inventory: Inventory,
    plans: dict[str, list[ReadRequest]],
    sims: Simulators,
    seconds: int,
    *,
    connect: BareConnect = PymodbusReader.connect,
    name: str = "baseline",
) -> Phase:
    """Bare reads of the collector's planned requests on the same schedule (raw pymodbus
    unless `connect` says otherwise): sequential per endpoint, concurrent across them."""
    phase = Phase(name, len(inventory.devices()), seconds)
    clients: list[tuple[BareReader, list[tuple[int, list[ReadRequest]]]]] = []
    for site in inventory.sites:
        for endpoint in site.endpoints:
            reader = await connect(endpoint.host, endpoint.port)
            work = [(d.unit, plans[d.id]) for d in endpoint.devices if plans.get(d.id)]
            clients.append((reader, work))
    window: list[int] = []

    async def poll_endpoint(
        reader: BareReader, work: list[tuple[int, list[ReadRequest]]], slot: int
    ) -> None:
        for unit, requests in work:
            if not await reader.poll(unit, requests):
                continue
            if window and window[0] <= slot <= window[1]:
                phase.polls += 1
                phase.lateness_s.append(time.time() - slot)

    async def endpoint_loop(
        reader: BareReader, work: list[tuple[int, list[ReadRequest]]], until: float
    ) -> None:
        slot = math.floor(time.time()) + 1
        while slot <= until:
            await asyncio.sleep(max(0.0, slot - time.time()))
            await poll_endpoint(reader, work, slot)
            missed = max(0, math.floor(time.time()) - slot)
            if window and window[0] <= slot <= window[1]:
                phase.overruns += missed
            slot = max(slot + 1, math.floor(time.time()) + 1)

    start = math.floor(time.time()) + 1
    first_slot = start + WARMUP_S // 2
    last_slot = first_slot + seconds - 1
    window[:] = [first_slot, last_slot]
    loops = [asyncio.create_task(endpoint_loop(c, w, last_slot)) for c, w in clients]
    await asyncio.sleep(first_slot - time.time())
    cpu_before, sim_before = time.process_time(), sims.cpu_seconds()
    await asyncio.sleep(seconds)
    phase.cpu_s = time.process_time() - cpu_before
    phase.simulator_cpu_s = sims.cpu_seconds() - sim_before
    await asyncio.gather(*loops)
    for reader, _ in clients:
        await reader.close()
    return phase


async def _poll_ok(client: AsyncModbusTcpClient, unit: int, requests: list[ReadRequest]) -> bool:
    """All of one device's reads answered without error (the baseline only counts)."""
    try:
        for request in requests:
            if (await _pymodbus_read(client, unit, request)).isError():
                return False
    except (ModbusException, TimeoutError):
        return False
    return True


async def _pymodbus_read(client: AsyncModbusTcpClient, unit: int, request: ReadRequest) -> Any:
    if request.space is Space.HOLDING:
        return await client.read_holding_registers(
            request.address, count=request.count, device_id=unit
        )
    if request.space is Space.INPUT:
        return await client.read_input_registers(
            request.address, count=request.count, device_id=unit
        )
    if request.space is Space.COIL:
        return await client.read_coils(request.address, count=request.count, device_id=unit)
    return await client.read_discrete_inputs(request.address, count=request.count, device_id=unit)


# -- the run ------------------------------------------------------------------------


async def kafka_topics(common: CommonSettings, prefix: str, create: bool) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
    except KafkaError:
        return False
    try:
        if create:
            await admin.create_topics([NewTopic(t, 6, 1) for t in all_topics(prefix)])
        else:
            await admin.delete_topics(all_topics(prefix))
        return True
    finally:
        await admin.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    common = load_settings(CommonSettings)
    prefix = f"bench-collector-{int(time.time())}"
    workdir = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    kafka_ok = await kafka_topics(common, prefix, create=True)
    _log(f"kafka {'reachable' if kafka_ok else 'UNREACHABLE: readings stay in the spool'}")
    sims = start_simulators(args.scale, args.simulators, workdir)
    try:
        inventory = merged_inventory(sims)
        _log(f"{len(inventory.devices())} devices on {len(inventory.sites)} sites; collector...")
        collector, plans, publishing = await run_collector(
            inventory,
            sims,
            seconds=args.seconds,
            kafka=common.kafka_bootstrap,
            prefix=prefix,
            spool=workdir / "spool",
        )
        _log("collector with Kafka unreachable (readings stay in the spool)...")
        spool_only, _, _ = await run_collector(
            inventory,
            sims,
            seconds=args.seconds,
            kafka=f"127.0.0.1:{free_port_block(1)}",
            prefix=prefix,
            spool=workdir / "spool-only",
            drain_s=2,
        )
        _log("baseline (raw pymodbus, same reads)...")
        baseline = await run_baseline(inventory, plans, sims, args.seconds)
    finally:
        sims.stop()
        if kafka_ok:
            await kafka_topics(common, prefix, create=False)
        shutil.rmtree(workdir, ignore_errors=True)
    ours, theirs = collector.summary(), baseline.summary()
    return {
        "benchmark": "collector_poll",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fleet": {
            "scale": args.scale,
            "devices": len(inventory.devices()),
            "sites": len(inventory.sites),
            "simulator_processes": args.simulators,
            "reads_per_slot": sum(len(p) for p in plans.values()),
        },
        "collector": {**ours, **publishing},
        "collector_kafka_unreachable": spool_only.summary(),
        "baseline_raw_pymodbus": theirs,
        "ratio": {
            "throughput_collector_over_baseline": round(
                ours["devices_polled_per_s"] / max(theirs["devices_polled_per_s"], 0.1), 3
            ),
            "throughput_collector_kafka_unreachable_over_baseline": round(
                spool_only.summary()["devices_polled_per_s"]
                / max(theirs["devices_polled_per_s"], 0.1),
                3,
            ),
            "cpu_per_poll_collector_over_baseline": round(
                ours["cpu_s_per_1000_polls"] / max(theirs["cpu_s_per_1000_polls"], 1e-6), 3
            ),
        },
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "os": platform.platform(),
        },
        "kafka_reachable": kafka_ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale", type=int, default=25, help="copies of the seed fleet (58 devices each)"
    )
    parser.add_argument("--seconds", type=int, default=30, help="measured window per phase")
    parser.add_argument("--simulators", type=int, default=2, help="simulator processes")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    c, b, r = result["collector"], result["baseline_raw_pymodbus"], result["ratio"]
    print(
        f"{result['fleet']['devices']} devices at 1 Hz: collector {c['devices_polled_per_s']}/s"
        f" (lateness p50 {c['lateness_s'].get('p50')} p99 {c['lateness_s'].get('p99')} s,"
        f" {c['overruns']} overruns), raw pymodbus {b['devices_polled_per_s']}/s"
        f" (p50 {b['lateness_s'].get('p50')} p99 {b['lateness_s'].get('p99')} s);"
        f" ratio {r['throughput_collector_over_baseline']};"
        f" CPU per poll x{r['cpu_per_poll_collector_over_baseline']}. -> {RESULTS}"
    )


if __name__ == "__main__":
    main()
