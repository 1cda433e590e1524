"""Benchmark: readings the cache applies to Redis per second, next to Redis' own ceiling.

    python benchmarks/cache_throughput.py [--devices 58 1000] [--readings 120000] [--batch 20000]

Starts a private redis-server (loopback, free port, not persisted) and, on it,
in one run:

1. the ceiling: `redis-benchmark -P 32` (SET and GET, pipelined), the most
   simple commands Redis can take per second on this machine;
2. for each fleet size (58 = the seed fleet, else sites of 13 devices):
   `--readings` synthetic readings (`ess_common.synthetic`, wire JSON as in
   Kafka) in batches of `--batch` (the service's batch size) go through
   the cache's own path: `ReadingDecoder` -> `RuleEvaluator` -> `plan_calls`
   -> `RedisStore.apply` (one EVALSHA per 4,000 readings, pipelined), the next
   batch decoded while Redis applies the last, as the service does. Kafka's
   fetch is not included. Then the same batches again: all duplicates.

Reported per fleet: readings applied per second (wall), per CPU-second of this
process and of Redis, the ratio to the SET ceiling, Redis commands per reading
(INFO commandstats, commands the scripts run included), and memory per device
(measured for this run, and an estimate at steady state with the default TTLs).
Writes bench-results/cache.json. Needs `redis-server` and `redis-benchmark`
(Debian: redis-tools); nothing else from the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from ess_cache.decode import ReadingDecoder
from ess_cache.plan import PlanConfig, iter_calls
from ess_cache.rules import AnomalyRules, RuleEvaluator
from ess_cache.settings import CacheSettings
from ess_cache.store import ApplyResult, RedisStore
from ess_cache.window import Retention
from ess_cache_layout.keys import Keys, series_of
from ess_cache_layout.measures import RESOLUTIONS
from ess_common.codec import encode_reading
from ess_common.synthetic import readings, scaled_fleet, seed_fleet

ROOT = Path(__file__).resolve().parents[1]
TARGET_PER_CORE = 20_000
SLICE = 2000  # as the service: readings handled between two yields to the event loop


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found (Debian: apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def _ceiling(port: int) -> dict[str, float] | str:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return "redis-benchmark not found (Debian: apt-get install redis-tools)"
    out = subprocess.run(
        [
            binary,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "set,get",
            "-P",
            "32",
            "-n",
            "1000000",
            "-r",
            "100000",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.findall(r"(SET|GET): ([0-9.]+) requests per second", out)
    return {f"{name.lower()}_per_s": float(rps) for name, rps in found}


async def _counters(client: aioredis.Redis) -> dict[str, float]:
    stats = await client.info("commandstats")
    cpu = await client.info("cpu")
    memory = await client.info("memory")
    calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))
    return {
        "calls": float(calls),
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "memory": float(memory["used_memory"]),
    }


async def _scenario(port: int, devices: int, readings_wanted: int, batch: int) -> dict[str, Any]:
    fleet = seed_fleet() if devices <= 62 else scaled_fleet(devices)
    n_devices = len(fleet.devices())
    seconds = max(60, readings_wanted // n_devices)
    series_per_device = len({s for d in fleet.devices() for s in series_of(d)}) / n_devices
    now = int(time.time())
    start = datetime.fromtimestamp(now - now % 60 - (seconds // 60 + 2) * 60, UTC)
    payloads = [
        (encode_reading(r), r.device.key.encode(), r.table) for r in readings(fleet, start, seconds)
    ]
    defaults = CacheSettings(_env_file=None)
    plan = PlanConfig(
        Retention(defaults.ttl_by_resolution, defaults.cache_window_days, defaults.cache_late_s),
        defaults.cache_anomaly_max_entries,
        defaults.cache_latest_ttl_s,
        defaults.cache_script_readings,
    )
    prefix = "bench"
    store = RedisStore(SecretStr(f"redis://127.0.0.1:{port}/0"), prefix, 30.0)
    client = store.redis
    await client.flushall()
    await client.hset(Keys(prefix).marker, "generation", "bench")
    await client.config_resetstat()
    empty = await _counters(client)

    async def run_all() -> tuple[float, float]:
        # As the service: batch N+1 is decoded and planned while Redis applies batch N.
        decoder, evaluator = ReadingDecoder(), RuleEvaluator(AnomalyRules())
        wall0, cpu0 = time.perf_counter(), time.process_time()
        in_flight: asyncio.Future[ApplyResult] | None = None
        for i in range(0, len(payloads), batch):
            items = []
            for j in range(i, min(i + batch, len(payloads)), SLICE):
                chunk = [decoder.decode(p, k, t) for p, k, t in payloads[j : j + SLICE]]
                items += [(r, evaluator.evaluate(r)) for r in chunk]
                await asyncio.sleep(0)  # the pipeline in flight keeps flowing to Redis
            calls = []
            for call in iter_calls(items, int(time.time()), plan):
                calls.append(call)
                await asyncio.sleep(0)
            if in_flight is not None:
                await in_flight
            in_flight = asyncio.ensure_future(store.apply(calls))
        if in_flight is not None:
            await in_flight
        return time.perf_counter() - wall0, time.process_time() - cpu0

    wall, cpu = await run_all()
    after = await _counters(client)
    sample_key = Keys(prefix).agg(
        "1m", f"dev:{fleet.devices()[1].key}", start_minute := (int(start.timestamp()) + 60)
    )
    bucket_bytes = await client.memory_usage(sample_key) or 0
    seen_bytes = (
        await client.memory_usage(
            Keys(prefix).seen(fleet.devices()[1].key, start_minute - start_minute % 86400)
        )
        or 0
    )
    replay_wall, replay_cpu = await run_all()
    replayed = await _counters(client)
    await store.close()

    n = len(payloads)
    redis_cpu = after["cpu_s"] - empty["cpu_s"]
    live = {
        r.name: (defaults.ttl_by_resolution[r.name] + r.seconds) / r.seconds for r in RESOLUTIONS
    }
    steady = sum(live.values()) * series_per_device * bucket_bytes  # bank and site series too
    steady += (defaults.cache_window_days + 1) * 86400 / 8  # the open days' dedupe bitmaps
    return {
        "devices": n_devices,
        "seconds_of_data": seconds,
        "series_per_device": round(series_per_device, 2),
        "readings": n,
        "batch": batch,
        "applied_per_s": round(n / wall),
        "applied_per_cpu_s_cache_process": round(n / cpu),
        "applied_per_cpu_s_redis": round(n / redis_cpu) if redis_cpu > 0 else None,
        "redis_cpu_us_per_reading": round(redis_cpu / n * 1e6, 1),
        "cache_cpu_us_per_reading": round(cpu / n * 1e6, 1),
        "redis_commands_per_reading": round((after["calls"] - empty["calls"]) / n, 2),
        "memory_bytes_per_device_this_run": round((after["memory"] - empty["memory"]) / n_devices),
        "bucket_bytes_1m_device": bucket_bytes,
        "seen_bitmap_bytes_for_this_run": seen_bytes,
        "memory_bytes_per_device_steady_estimate": round(steady),
        "replay_duplicates_per_s": round(n / replay_wall),
        "replay_duplicates_per_cpu_s_cache_process": round(n / replay_cpu),
        "replay_redis_commands_per_reading": round((replayed["calls"] - after["calls"]) / n, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[58, 1000])
    parser.add_argument("--readings", type=int, default=120_000, help="per fleet size")
    parser.add_argument(
        "--batch", type=int, default=CacheSettings(_env_file=None).cache_batch_max_readings
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ess-cache-bench-") as tmp:
        proc, port = _start_redis(Path(tmp))
        try:
            ceiling = _ceiling(port)
            scenarios = [
                asyncio.run(_scenario(port, d, args.readings, args.batch)) for d in args.devices
            ]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    set_rps = ceiling.get("set_per_s") if isinstance(ceiling, dict) else None
    for s in scenarios:
        s["ratio_to_set_ceiling"] = round(s["applied_per_s"] / set_rps, 3) if set_rps else None
        per_core = min(s["applied_per_cpu_s_cache_process"], s["applied_per_cpu_s_redis"] or 0)
        s["meets_target_per_core"] = per_core >= TARGET_PER_CORE
    result = {
        "benchmark": "cache_throughput",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "ceiling_redis_benchmark_pipelined_32": ceiling,
        "target_readings_per_s_per_core": TARGET_PER_CORE,
        "scenarios": scenarios,
    }
    out = ROOT / "bench-results" / "cache.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"redis-benchmark -P 32: {ceiling}")
    for s in scenarios:
        print(
            f"{s['devices']:>5} devices: {s['applied_per_s']:>7,} readings/s applied"
            f" ({s['applied_per_cpu_s_cache_process']:,}/cpu-s cache, "
            f"{s['applied_per_cpu_s_redis']:,}/cpu-s redis; {s['ratio_to_set_ceiling']} of SET),"
            f" {s['redis_commands_per_reading']} cmds/reading,"
            f" {s['memory_bytes_per_device_steady_estimate'] / 1024:,.0f} KiB/device steady;"
            f" replay {s['replay_duplicates_per_s']:,}/s"
        )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
