"""The whole pipeline as processes: simulator -> collector -> Kafka -> both sinks.

Every device of the seed fleet is polled for a while; afterwards both
clusters hold exactly the readings Kafka holds, identical to each other, one
row per device per slot, and every service stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.topics import telemetry_topic
from helpers.common import DatabaseFactory, unique
from helpers.disposable import free_port

SEED_DEVICES = 5 + 8 + 9 + 8 + 11 + 9 + 4 * 2  # banks + racks + a PCS and a meter per site
COLLECT_S = 12
STATUS_AT_S, STATUS_INTERVAL_S = 5, 2  # `essctl status` looks 7 s in, over 2 s


def _sites(inventory: Path) -> set[str]:
    doc = yaml.safe_load(inventory.read_text())
    return {site["id"] for site in doc["sites"]}


async def _status_shows_the_flow(http: dict[str, int], sites: set[str]) -> None:
    """`essctl status` against the running services: per-site readings, both clusters' flow."""
    targets = [f"--target={name}=http://127.0.0.1:{port}/metrics" for name, port in http.items()]
    args = ["-m", "ess_ctl", "status", f"--interval={STATUS_INTERVAL_S}", *targets]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, "--json", stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    frame = orjson.loads(out)
    assert [s["up"] for s in frame["services"]] == [True, True, True]
    flowing = {r["site"] for r in frame["readings"] if r["per_s"] > 0}
    assert flowing == sites
    clusters = {c["cluster"]: c for c in frame["clusters"]}
    assert set(clusters) == {"local", "cloud"}
    for c in clusters.values():
        assert c["rows_per_s"] > 0
        assert c["freshness_p50_s"] is not None
        assert c["freshness_p99_s"] >= c["freshness_p50_s"]


def _consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        base = free_port()
        if base + count < 65000 and all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def _spawn(
    name: str, env: dict[str, str], logs: Path, *args: str
) -> asyncio.subprocess.Process:
    log = (logs / f"{name}.log").open("wb")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), 40)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -9


async def _kafka_total(bootstrap: str, prefix: str) -> int:
    """Messages in the test's telemetry topics (sum of end - beginning offsets)."""
    topics = [telemetry_topic(t, prefix) for t in TABLES]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends[tp] - starts[tp] for tp in tps)


async def _keys(dsn: str) -> set[tuple[str, object]]:
    conn = await asyncpg.connect(dsn)
    try:
        keys: set[tuple[str, object]] = set()
        for table in TABLES:
            rows = await conn.fetch(f"SELECT device_id, ts FROM {table}")
            keys.update((r["device_id"], r["ts"]) for r in rows)
        return keys
    except asyncpg.UndefinedTableError:
        return set()
    finally:
        await conn.close()


def _collector_inventory(base_port: int, folder: Path) -> Path:
    """The collector's inventory for the simulator's fleet, made by their own CLIs."""
    sim_inventory = subprocess.run(
        [sys.executable, "-m", "ess_simulator", "inventory", "--base-port", str(base_port)],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    inventory = folder / "inventory.yaml"
    inventory.write_bytes(
        subprocess.run(
            [sys.executable, "-m", "ess_collector.from_simulator"],
            input=sim_inventory,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )
    return inventory


async def test_every_polled_reading_lands_once_in_both_clusters(
    settings: CommonSettings,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    prefix = telemetry_prefix
    base_port, control_port = _consecutive_free_ports(4), free_port()
    inventory = await asyncio.to_thread(_collector_inventory, base_port, tmp_path)
    dsn = {"local": await make_database("local"), "cloud": await make_database("cloud")}
    common = {"ESS_TOPIC_PREFIX": prefix, "ESS_HTTP_PORT": "0", "ESS_LOG_FORMAT": "json"}
    http = {name: free_port() for name in ("collector", "sink-local", "sink-cloud")}

    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        procs["simulator"] = await _spawn(
            "simulator",
            common,
            tmp_path,
            "ess_simulator",
            "run",
            "--base-port",
            str(base_port),
            "--control-port",
            str(control_port),
        )
        for cluster in ("local", "cloud"):
            procs[f"sink-{cluster}"] = await _spawn(
                f"sink-{cluster}",
                {
                    **common,
                    "ESS_SINK_CLUSTER": cluster,
                    "ESS_HTTP_PORT": str(http[f"sink-{cluster}"]),
                    "ESS_SINK_GROUP_ID": unique("g"),
                    f"ESS_DB_{cluster.upper()}_DSN": dsn[cluster],
                },
                tmp_path,
                "ess_sink",
            )
        procs["collector"] = await _spawn(
            "collector",
            {
                **common,
                "ESS_HTTP_PORT": str(http["collector"]),
                "ESS_COLLECTOR_INVENTORY": str(inventory),
                "ESS_COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"),
            },
            tmp_path,
            "ess_collector",
        )

        await asyncio.sleep(COLLECT_S - STATUS_AT_S)
        await _status_shows_the_flow(http, _sites(inventory))
        await asyncio.sleep(STATUS_AT_S - STATUS_INTERVAL_S)
        assert await _stop(procs["collector"]) == 0  # flushes its spool to Kafka first
        produced = await _kafka_total(settings.kafka_bootstrap, prefix)
        assert produced >= SEED_DEVICES * (COLLECT_S - 5)  # it really polled every device

        async with asyncio.timeout(90):
            while True:
                local, cloud = await _keys(dsn["local"]), await _keys(dsn["cloud"])
                if len(local) == len(cloud) == produced:
                    break
                await asyncio.sleep(0.5)
        assert local == cloud
        assert len({device for device, _ in local}) == SEED_DEVICES
        for cluster in ("local", "cloud"):
            conn = await asyncpg.connect(dsn[cluster])
            try:
                rows = sum([await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES])
            finally:
                await conn.close()
            assert rows == produced  # count = distinct keys = produced: nothing lost or doubled
        for name in ("sink-local", "sink-cloud", "simulator"):
            assert await _stop(procs[name]) == 0, name
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
