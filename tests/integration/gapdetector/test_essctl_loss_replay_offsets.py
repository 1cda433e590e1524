"""`essctl loss|replay|offsets` as a real process against real Kafka and both clusters,
with figures computed by hand, and bad arguments refused before anything changes."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta
from typing import Any

import orjson

from ess_common.kafka_offsets import assign_topics, offset_reader
from ess_common.model import TABLES
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings
from ess_common.topics import replay_topic
from helpers.common import DatabaseFactory
from helpers.gap import (
    SMALL_FLEET,
    Clusters,
    essctl,
    execute,
    fill_both_clusters,
    minute_ago,
    pipeline,
    produce,
    replay_worker,
    table_counts,
)

MUTED = "site1/pcs1"
HOLED = "site2/bank1/rack2"


def _iso(t: datetime) -> str:
    return t.isoformat()


def _rows(stdout: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    doc = orjson.loads(stdout)
    return {(r["cluster"], r["site"], r["table"]): r for r in doc["rows"] if "device" not in r}


async def _control_messages(settings: CommonSettings, prefix: str) -> int:
    reader = offset_reader(settings.kafka_bootstrap)
    await reader.start()
    try:
        tps = await assign_topics(reader, [replay_topic(prefix)])
        ends = await reader.end_offsets(tps)
        return int(sum(ends.values()))
    finally:
        await reader.stop()


async def test_essctl_reports_replays_and_refuses_bad_arguments(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = minute_ago(20)
    t60 = t0 + timedelta(seconds=60)
    sent = [
        r
        for r in readings(SMALL_FLEET, t0, seconds=60)
        if not (r.device.key == MUTED and (r.ts - t0).total_seconds() < 15)
    ]
    expected = {t: sum(1 for r in sent if r.table == t) for t in TABLES}
    async with pipeline(settings, topic_prefix, make_database) as clusters:
        await produce(settings, topic_prefix, sent)
        await fill_both_clusters(settings, topic_prefix, clusters, expected)
        await execute(
            clusters.local,
            "DELETE FROM rack WHERE device_id = $1 AND ts >= $2 AND ts < $3",
            HOLED,
            t0 + timedelta(seconds=30),
            t0 + timedelta(seconds=36),
        )
        window = ["--from", _iso(t0), "--to", _iso(t60)]

        # loss: hand-computed. Racks: site1 3x60, site2 2x60 with 6 slots gone in local.
        done = essctl(["loss", "--cluster", "all", *window, "--json"], topic_prefix, clusters)
        assert done.returncode == 0, done.stderr
        rows = _rows(done.stdout)
        site2 = rows[("local", "site2", "rack")]
        assert (site2["expected"], site2["reached_kafka"], site2["present"]) == (120, 120, 114)
        assert (site2["sink_loss_pct"], site2["loss_pct"]) == (5.0, 5.0)
        assert site2["severity"] == "warning"  # exactly 5 %: not above it
        rack_all = rows[("local", "all", "rack")]
        assert (rack_all["expected"], rack_all["present"], rack_all["loss_pct"]) == (300, 294, 2.0)
        assert rack_all["severity"] == "ok"  # exactly 2 %: not above it
        assert rack_all["table_bytes"] > 0
        assert rows[("cloud", "site2", "rack")]["loss_pct"] == 0.0
        for cluster in ("local", "cloud"):
            pcs1 = rows[(cluster, "site1", "pcs")]
            assert (pcs1["expected"], pcs1["reached_kafka"], pcs1["present"]) == (60, 45, 45)
            assert (pcs1["source_loss_pct"], pcs1["sink_loss_pct"]) == (25.0, 0.0)
            assert pcs1["severity"] == "critical"
            assert rows[(cluster, "all", "pcs")]["loss_pct"] == 12.5
        by_device = essctl(
            [
                "loss",
                "--cluster",
                "local",
                "--site",
                "site2",
                "--table",
                "rack",
                "--by-device",
                *window,
                "--json",
            ],
            topic_prefix,
            clusters,
        )
        assert by_device.returncode == 0, by_device.stderr
        devices = {r["device"]: r for r in orjson.loads(by_device.stdout)["rows"] if "device" in r}
        assert set(devices) == {"site2/bank1/rack1", HOLED}
        assert devices[HOLED]["sink_loss"] == 6
        assert devices[HOLED]["loss_pct"] == 10.0

        # Bad arguments: one line, exit 2, nothing changed.
        before = (await table_counts(clusters.local), await table_counts(clusters.cloud))
        bad = [
            ["loss", "--cluster", "mars", *window],
            ["loss", "--table", "racks", *window],
            ["loss", "--site", "nosuch", *window],
            ["loss", "--from", _iso(t60), "--to", _iso(t0)],
            ["loss", "--from", "yesterday-ish", "--to", _iso(t0)],
            [
                "replay",
                "--cluster",
                "local",
                "--table",
                "rack",
                "--from",
                _iso(t60),
                "--to",
                _iso(t0),
            ],
            ["replay", "--cluster", "all", "--table", "rack", *window],
            [
                "replay",
                "--cluster",
                "local",
                "--table",
                "rack",
                "--partition",
                "0",
                "--from-offset",
                "5",
                "--to-offset",
                "3",
            ],
            [
                "replay",
                "--cluster",
                "local",
                "--table",
                "rack",
                "--partition",
                "9",
                "--from-offset",
                "0",
                "--to-offset",
                "3",
            ],
            ["replay", "--cluster", "local", "--table", "rack", "--from", _iso(t0)],
            ["sync", "--from", "local", "--to", "local", "--start", _iso(t0), "--end", _iso(t60)],
            ["sync", "--from", "local", "--to", "cloud", "--start", _iso(t0), "--end", "never"],
        ]
        for args in bad:
            result = essctl(args, topic_prefix, clusters)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
            assert result.stderr.startswith(f"essctl {args[0]}: error: "), result.stderr
            assert result.stdout == ""
        assert (await table_counts(clusters.local), await table_counts(clusters.cloud)) == before
        assert await _control_messages(settings, topic_prefix) == 0

        # replay: the plan first (nothing changes), then the replay itself.
        replay = ["replay", "--cluster", "local", "--table", "rack"]
        dry = essctl([*replay, *window, "--dry-run", "--json"], topic_prefix, clusters)
        assert dry.returncode == 0, dry.stderr
        plan = orjson.loads(dry.stdout)["plan"]
        assert plan["messages_at_most"] == 300  # every rack message of the topic
        assert sum(p["messages"] for p in plan["partitions"]) == 300
        assert (await table_counts(clusters.local))["rack"] == 294

        part = [
            "--from",
            _iso(t0 + timedelta(seconds=30)),
            "--to",
            _iso(t0 + timedelta(seconds=40)),
        ]
        real = essctl([*replay, *part, "--json"], topic_prefix, clusters)
        assert real.returncode == 0, real.stderr
        result = orjson.loads(real.stdout)["result"]
        assert result["state"] == "completed"
        assert (result["rows_in_range"], result["rows_inserted"], result["rows_present"]) == (
            50,
            6,
            44,
        )
        assert (await table_counts(clusters.local))["rack"] == 300

        by_offset = essctl(
            [*replay, "--partition", "0", "--from-offset", "0", "--to-offset", "10", "--json"],
            topic_prefix,
            clusters,
        )
        assert by_offset.returncode == 0, by_offset.stderr
        result = orjson.loads(by_offset.stdout)["result"]
        assert (result["messages_read"], result["rows_inserted"], result["rows_present"]) == (
            10,
            0,
            10,
        )

        # --submit: the local sink's replay worker serves it; essctl follows its status.
        await execute(
            clusters.local,
            "DELETE FROM rack WHERE device_id = $1 AND ts >= $2 AND ts < $3",
            HOLED,
            t0,
            t0 + timedelta(seconds=4),
        )
        worker = replay_worker(settings, "local", clusters, topic_prefix)
        stop = asyncio.Event()
        serving = asyncio.create_task(worker.run(stop))
        try:
            code, out, err = await _essctl_async(
                [*replay, *window, "--submit", "--wait", "60", "--json"], topic_prefix, clusters
            )
            assert code == 0, err
            result = orjson.loads(out)["result"]
            assert (result["state"], result["rows_inserted"], result["rows_present"]) == (
                "completed",
                4,
                296,
            )
            assert worker.served == 1

            # offsets: the sinks' groups are caught up; the replay worker committed its
            # request and the status messages behind it, which it reads (and commits) after
            # reporting completion: polled while it still runs.
            for _ in range(40):
                offsets = await asyncio.to_thread(
                    essctl, ["offsets", "--json"], topic_prefix, clusters
                )
                assert offsets.returncode == 0, offsets.stderr
                found = orjson.loads(offsets.stdout)["offsets"]
                pending = [r for r in found if r["group"] == worker.group_id and r["lag"] != 0]
                if not pending:
                    break
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)
        rack = [r for r in found if r["topic"].endswith(".telemetry.rack")]
        assert len({r["group"] for r in rack}) == 2  # the test's two sink groups
        assert all(r["lag"] == 0 and r["committed"] == r["end"] for r in rack)
        control = [r for r in found if r["group"] == worker.group_id]
        assert control
        assert all(r["lag"] == 0 for r in control)


async def _essctl_async(args: list[str], prefix: str, clusters: Clusters) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "ESS_TOPIC_PREFIX": prefix,
        "ESS_DB_LOCAL_DSN": clusters.local,
        "ESS_DB_CLOUD_DSN": clusters.cloud,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ess_ctl",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
