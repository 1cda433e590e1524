"""Benchmark: the collector's own ceiling on one core, against bare reads in the same run.

    python benchmarks/collector_ceiling.py [--steps 580,1160,1450,1740,2030] [--seconds 15]

Needs the local stack's Kafka (`make up`). Writes bench-results/collector_ceiling.json.

This process (the collector, and every bare client) is pinned to CPU 0 and
the load source, one simulator process in `serving: fast` mode (images packed
once per second and served by slicing), to CPU 1 with `taskset`. The
simulator serves the largest fleet of the steps; each step polls the first
sites of it.

1. **Simulator ceiling**: a bare pipelined client (precomputed request frames,
   64 in flight per gateway, replies only counted) sends the collector's
   planned reads for 5 s: replies per second, against the collector's own
   request rate at its largest fleet.
2. **Steps**: for each fleet size, the collector (whole path: reads,
   decoding, readings, JSON, spool, Kafka acks=all) and then raw pymodbus
   doing the same reads on the same schedule (no retries, the collector's
   timeout, reconnect off). A step is *kept at 1 Hz* when every slot was
   polled, p99 lateness is under 100 ms and no slot overran. Stepping stops
   after two sizes in a row the collector does not keep (the machine is
   shared: one bad window is not yet the ceiling).
3. **Clients at the comparison size** (the first step): bare reads of the same
   plan with our client, with pymodbus's client, and with pymodbus's framer
   and PDU classes on our kind of connection (one asyncio protocol, a timer
   per request): CPU per read and lateness.

Reported per phase: devices polled per second, lateness percentiles, overruns,
CPU ms per poll of this process, simulator cores; ratios against the
baselines of the same run (the machine is shared: compare within a run), the
load average, and requests per device and second against the optimal merge
plan (every span of a space merged whatever the gap, 125 registers a read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
)

from ess_collector.errors import ModbusError
from ess_collector.inventory import Inventory
from ess_collector.modbus_client import ReadOnlyModbusClient
from ess_collector.modbus_frames import encode_read_request
from ess_collector.planning import ReadRequest, Space, plan_reads
from ess_collector.register_map import spans as map_spans
from ess_common.settings import CommonSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the shared phases live in the other collector benchmark
from benchmarks.collector_poll import (  # noqa: E402
    DEVICES_PER_COPY,
    Phase,
    PymodbusReader,
    Simulators,
    kafka_topics,
    merged_inventory,
    run_baseline,
    run_collector,
    start_simulators,
)

RESULTS = ROOT / "bench-results" / "collector_ceiling.json"
COLLECTOR_CPU, LOAD_CPU = 0, 1
LATENESS_P99_LIMIT_S = 0.1
CEILING_SECONDS = 5
CEILING_IN_FLIGHT = 64
TIMEOUT_S = 0.5


def _log(msg: str) -> None:
    print(f"[collector-ceiling] {msg}", file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def first_sites(inventory: Inventory, devices: int) -> Inventory:
    """The first sites of the fleet holding at least `devices` devices."""
    sites, count = [], 0
    for site in inventory.sites:
        if count >= devices:
            break
        sites.append(site)
        count += sum(len(e.devices) for e in site.endpoints)
    return Inventory(register_maps=inventory.register_maps, sites=sites)


# -- bare clients ---------------------------------------------------------------------


class OurReader:
    """The collector's own client, bare: the planned reads, no decoding."""

    def __init__(self, client: ReadOnlyModbusClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, host: str, port: int) -> OurReader:
        client = ReadOnlyModbusClient(host, port)
        await client.connect(2.0)
        return cls(client)

    async def poll(self, unit: int, requests: list[ReadRequest]) -> bool:
        try:
            for r in requests:
                await self.client.read(r.space.function, unit, r.address, r.count, TIMEOUT_S)
        except ModbusError:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


_PYMODBUS_REQUESTS: dict[Space, type[ModbusPDU]] = {
    Space.COIL: ReadCoilsRequest,
    Space.DISCRETE: ReadDiscreteInputsRequest,
    Space.HOLDING: ReadHoldingRegistersRequest,
    Space.INPUT: ReadInputRegistersRequest,
}


class _PymodbusFramed(asyncio.Protocol):
    """pymodbus's framer and PDU classes on one plain asyncio connection."""

    def __init__(self) -> None:
        self.framer = FramerSocket(DecodePDU(False))
        self.buffer = b""
        self.waiting: dict[int, asyncio.Future[ModbusPDU]] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            used, pdu = self.framer.handleFrame(self.buffer, 0, 0)
            if pdu is None:
                return
            self.buffer = self.buffer[used:]
            waiter = self.waiting.pop(pdu.transaction_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(pdu)


class PymodbusFramerReader:
    def __init__(self, protocol: _PymodbusFramed) -> None:
        self.protocol = protocol
        self.tid = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> PymodbusFramerReader:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_PymodbusFramed, host, port)
        return cls(protocol)

    async def poll(self, unit: int, requests: list[ReadRequest]) -> bool:
        loop = asyncio.get_running_loop()
        protocol = self.protocol
        assert protocol.transport is not None
        for r in requests:
            self.tid = self.tid % 0xFFFF + 1
            request = _PYMODBUS_REQUESTS[r.space](
                address=r.address, count=r.count, dev_id=unit, transaction_id=self.tid
            )
            reply: asyncio.Future[ModbusPDU] = loop.create_future()
            protocol.waiting[self.tid] = reply
            timer = loop.call_later(TIMEOUT_S, reply.cancel)
            protocol.transport.write(protocol.framer.buildFrame(request))
            try:
                pdu = await reply
            except asyncio.CancelledError:
                return False
            finally:
                timer.cancel()
            if pdu.isError():
                return False
        return True

    async def close(self) -> None:
        if self.protocol.transport is not None:
            self.protocol.transport.close()


# -- the simulator's own ceiling ------------------------------------------------------


class _CountingPipe(asyncio.Protocol):
    """Keeps `in_flight` precomputed requests outstanding; counts the replies."""

    def __init__(self, frames: list[bytes], in_flight: int) -> None:
        self.frames, self.in_flight = frames, in_flight
        self.next = 0
        self.replies = 0
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.running = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send(self.in_flight)

    def _send(self, count: int) -> None:
        if not self.running or self.transport is None:
            return
        out = []
        for _ in range(count):
            out.append(self.frames[self.next])
            self.next = (self.next + 1) % len(self.frames)
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        done = 0
        while len(buffer) >= 6:
            end = 6 + struct.unpack_from(">H", buffer, 4)[0]
            if len(buffer) < end:
                break
            del buffer[:end]
            done += 1
        self.replies += done
        self._send(done)


async def simulator_ceiling(
    inventory: Inventory, plans: dict[str, list[ReadRequest]], sims: Simulators
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pipes: list[_CountingPipe] = []
    for site in inventory.sites:
        for endpoint in site.endpoints:
            frames = [
                encode_read_request(i % 0xFFFF, d.unit, r.space.function, r.address, r.count)
                for i, (d, r) in enumerate(
                    (d, r) for d in endpoint.devices for r in plans.get(d.id, [])
                )
            ]
            if frames:
                pipe = _CountingPipe(frames, CEILING_IN_FLIGHT)
                await loop.create_connection(lambda p=pipe: p, endpoint.host, endpoint.port)  # type: ignore[misc]
                pipes.append(pipe)
    await asyncio.sleep(1.0)  # warm up
    replies, sim_cpu, started = sum(p.replies for p in pipes), sims.cpu_seconds(), time.monotonic()
    await asyncio.sleep(CEILING_SECONDS)
    elapsed = time.monotonic() - started
    answered = sum(p.replies for p in pipes) - replies
    sim_cores = (sims.cpu_seconds() - sim_cpu) / elapsed
    for pipe in pipes:
        pipe.running = False
        if pipe.transport is not None:
            pipe.transport.close()
    return {
        "replies_per_s": round(answered / elapsed),
        "simulator_cores_used": round(sim_cores, 2),
        "connections": len(pipes),
        "in_flight_per_connection": CEILING_IN_FLIGHT,
    }


# -- the run --------------------------------------------------------------------------


def optimal_reads(service_devices: list[Any]) -> int:
    """Reads per slot if every space's spans were merged whatever the gap."""
    total = 0
    for device in service_devices:
        if device.register_map is not None:
            spans = map_spans(device.register_map)
        elif device.layout is not None:
            spans = device.layout.spans()
        else:
            continue
        total += len(plan_reads(spans, max_registers=125, gap_fill=65535))
    return total


def _kept(phase: dict[str, Any]) -> bool:
    p99 = phase["lateness_s"].get("p99", 99.0)
    return bool(
        phase["share_of_slots_polled"] >= 1.0
        and p99 < LATENESS_P99_LIMIT_S
        and phase["overruns"] == 0
    )


async def _collector_phase(
    inventory: Inventory,
    sims: Simulators,
    *,
    args: argparse.Namespace,
    common: CommonSettings,
    prefix: str,
    workdir: Path,
    tag: str,
) -> tuple[Phase, dict[str, list[ReadRequest]], dict[str, Any], list[Any]]:
    devices: list[Any] = []
    phase, plans, publishing = await run_collector(
        inventory,
        sims,
        seconds=args.seconds,
        kafka=common.kafka_bootstrap,
        prefix=prefix,
        spool=workdir / f"spool-{tag}",
        devices_out=devices,
    )
    return phase, plans, publishing, devices


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {COLLECTOR_CPU})
    common = load_settings(CommonSettings)
    prefix = f"bench-ceiling-{int(time.time())}"
    workdir = Path(tempfile.mkdtemp(prefix="collector-ceiling-"))
    kafka_ok = await kafka_topics(common, prefix, create=True)
    if not kafka_ok:
        raise SystemExit("Kafka is not reachable: `make up` first")
    steps = sorted(args.steps)
    scale = -(-max(steps) // DEVICES_PER_COPY)
    sims = start_simulators(scale, 1, workdir, serving="fast", cpus=str(LOAD_CPU))
    result: dict[str, Any] = {"steps": []}
    try:
        fleet = merged_inventory(sims)
        plans_all: dict[str, list[ReadRequest]] = {}
        misses = 0
        for index, target in enumerate(steps):
            inventory = first_sites(fleet, target)
            n = len(inventory.devices())
            _log(f"step {n} devices (load {_load()}): collector...")
            collector, plans, publishing, devices = await _collector_phase(
                inventory,
                sims,
                args=args,
                common=common,
                prefix=prefix,
                workdir=workdir,
                tag=str(n),
            )
            plans_all.update(plans)
            _log(f"step {n}: raw pymodbus...")
            baseline = await run_baseline(inventory, plans, sims, args.seconds)
            ours, theirs = collector.summary(), baseline.summary()
            reads = sum(len(p) for p in plans.values())
            step = {
                "devices": n,
                "load_average": _load(),
                "collector": {
                    **ours,
                    "kafka_acked_all_after_stop": publishing["kafka_acked_all_after_stop"],
                },
                "baseline_raw_pymodbus": theirs,
                "kept_at_1hz": _kept(ours),
                "baseline_kept_at_1hz": _kept(theirs),
                "requests_per_device_per_s": round(reads / n, 3),
                "optimal_requests_per_device_per_s": round(optimal_reads(devices) / n, 3),
                "ratio": _ratios(ours, theirs),
            }
            if index == 0:
                step["clients"] = await _clients(inventory, plans, sims, args.seconds, theirs)
            result["steps"].append(step)
            _log(json.dumps({k: step[k] for k in ("devices", "kept_at_1hz", "ratio")}))
            misses = 0 if step["kept_at_1hz"] else misses + 1
            if misses == 2:  # two sizes in a row not kept: the ceiling is behind us
                break
        _log("simulator ceiling (bare pipelined client)...")
        result["simulator_ceiling"] = await simulator_ceiling(fleet, plans_all, sims)
    finally:
        sims.stop()
        await kafka_topics(common, prefix, create=False)
        shutil.rmtree(workdir, ignore_errors=True)
    kept = [s for s in result["steps"] if s["kept_at_1hz"]]
    best = max(kept, key=lambda s: s["devices"]) if kept else None
    collector_rate = best["devices"] * best["requests_per_device_per_s"] if best else 0
    result["summary"] = {
        "devices_kept_at_1hz_on_one_core": best["devices"] if best else 0,
        "collector_requests_per_s_at_that_fleet": round(collector_rate),
        "simulator_ceiling_over_collector_rate": round(
            result["simulator_ceiling"]["replies_per_s"] / max(collector_rate, 1), 1
        ),
    }
    result.update(
        benchmark="collector_ceiling",
        when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine={"cores": os.cpu_count(), "collector_cpu": COLLECTOR_CPU, "load_cpu": LOAD_CPU},
        seconds_per_phase=args.seconds,
    )
    return result


def _ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    def ratio(a: float | None, b: float | None) -> float:
        return round((a or 0.0) / max(b or 0.0, 1e-6), 3)

    return {
        "cpu_per_poll_collector_over_pymodbus": ratio(
            ours["cpu_s_per_1000_polls"], theirs["cpu_s_per_1000_polls"]
        ),
        "p50_lateness_collector_over_pymodbus": ratio(
            ours["lateness_s"].get("p50"), theirs["lateness_s"].get("p50")
        ),
        "p99_lateness_collector_over_pymodbus": ratio(
            ours["lateness_s"].get("p99"), theirs["lateness_s"].get("p99")
        ),
    }


async def _clients(
    inventory: Inventory,
    plans: dict[str, list[ReadRequest]],
    sims: Simulators,
    seconds: int,
    pymodbus_phase: dict[str, Any],
) -> dict[str, Any]:
    _log("clients: our client, bare reads...")
    ours = (
        await run_baseline(inventory, plans, sims, seconds, connect=OurReader.connect, name="ours")
    ).summary()
    _log("clients: pymodbus framer and PDUs on our kind of connection...")
    framed = (
        await run_baseline(
            inventory, plans, sims, seconds, connect=PymodbusFramerReader.connect, name="framer"
        )
    ).summary()
    _log("clients: pymodbus client again (same run, after the others)...")
    again = (
        await run_baseline(inventory, plans, sims, seconds, connect=PymodbusReader.connect)
    ).summary()
    _log("clients: our client again...")
    ours_again = (
        await run_baseline(inventory, plans, sims, seconds, connect=OurReader.connect, name="ours")
    ).summary()
    best_ours = min(ours["cpu_s_per_1000_polls"], ours_again["cpu_s_per_1000_polls"])
    return {
        "our_client_bare_reads": ours,
        "our_client_bare_reads_again": ours_again,
        "pymodbus_client": pymodbus_phase,
        "pymodbus_client_again": again,
        "pymodbus_framer_on_our_connection": framed,
        "cpu_per_poll_over_our_client": {  # against the cheaper of our two runs
            "pymodbus_client": round(pymodbus_phase["cpu_s_per_1000_polls"] / best_ours, 3),
            "pymodbus_client_again": round(again["cpu_s_per_1000_polls"] / best_ours, 3),
            "pymodbus_framer": round(framed["cpu_s_per_1000_polls"] / best_ours, 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[580, 870, 1160, 1450, 1740, 2030],
        help="fleet sizes (devices), comma-separated",
    )
    parser.add_argument("--seconds", type=int, default=15, help="measured window per phase")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"]), f"-> {RESULTS}")


if __name__ == "__main__":
    main()
