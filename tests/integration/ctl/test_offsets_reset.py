"""`essctl offsets reset` against real Kafka and both clusters: a sink group reset back
re-reads from there and changes nothing; refused while the group has a member; offsets
out of range are clamped as Kafka's own tool clamps them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.clusters import Cluster
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import group_committed
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_common.topics import telemetry_topic
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import counter_total, run_sink_until, sink_settings
from helpers.sinkdata import fingerprints, messages, produce, recent_slot, row_count


def reset(group: str, topic: str, *how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ess_ctl",
            "offsets",
            "reset",
            "--group",
            group,
            "--topic",
            topic,
            *how,
        ],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def planned(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    plan: list[dict[str, Any]] = orjson.loads(result.stdout)["plan"]
    return plan


async def test_a_reset_sink_group_rereads_and_changes_nothing(
    settings: CommonSettings,
    topic_prefix: str,
    make_database: DatabaseFactory,
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    batch = messages(readings(seed_fleet(), recent_slot(2), seconds=10), topic_prefix)
    rack, pcs = telemetry_topic("rack", topic_prefix), telemetry_topic("pcs", topic_prefix)
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
            await produce(producer, batch)
        clusters: tuple[Cluster, ...] = ("local", "cloud")
        for cluster in clusters:
            dsn, group = await make_database(cluster), unique("g")
            config = sink_settings(settings, cluster, dsn, topic_prefix, group)

            async def all_written(service: SinkService) -> bool:
                return counter_total(service, "rows_written") >= len(batch)

            await run_sink_until(config, all_written)
            assert await row_count(dsn) == len(batch)
            before = await fingerprints(dsn)

            # rack: 3 back on every partition; pcs: back to the start. A dry run first.
            dry = planned(reset(group, rack, "--shift-by", "-3", "--json"))
            assert await group_committed(kafka_admin, group, rack) == {
                p["partition"]: p["current"] for p in dry
            }  # the dry run changed nothing
            shifted = planned(reset(group, rack, "--shift-by", "-3", "--execute", "--json"))
            assert all(p["new"] == max(0, p["current"] - 3) for p in shifted)
            rewound = planned(reset(group, pcs, "--to-earliest", "--execute", "--json"))
            assert all(p["new"] == 0 for p in rewound)
            reread = sum(p["current"] - p["new"] for p in shifted + rewound)
            assert reread > 0
            assert await group_committed(kafka_admin, group, rack) == {
                p["partition"]: p["new"] for p in shifted
            }

            async def reread_all(service: SinkService, wanted: int = reread) -> bool:
                return counter_total(service, "duplicates") >= wanted

            again = await run_sink_until(config, reread_all)
            assert counter_total(again, "rows_written") == 0
            assert counter_total(again, "duplicates") == reread  # from the reset, not before
            assert await fingerprints(dsn) == before  # same rows, not even rewritten
            # and it committed up to the end again
            assert await group_committed(kafka_admin, group, rack) == {
                p["partition"]: p["current"] for p in shifted
            }


async def test_refused_with_an_active_member_and_clamped_out_of_range(
    settings: CommonSettings,
    topic_prefix: str,
    make_database: DatabaseFactory,
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    batch = messages(readings(seed_fleet(), recent_slot(2), seconds=4), topic_prefix)
    bank = telemetry_topic("bank", topic_prefix)
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
            await produce(producer, batch)
        dsn, group = await make_database("local"), unique("g")
        config = sink_settings(settings, "local", dsn, topic_prefix, group)
        refusals: list[subprocess.CompletedProcess[str]] = []

        async def refused_while_running(service: SinkService) -> bool:
            if counter_total(service, "rows_written") < len(batch):
                return False
            args = (group, bank, "--to-earliest", "--execute")
            refusals.append(await asyncio.to_thread(reset, *args))
            return True

        await run_sink_until(config, refused_while_running)
        refusal = refusals[0]
        assert refusal.returncode == 1, refusal.stdout
        assert refusal.stdout == ""
        assert "refused" in refusal.stderr
        assert "active member" in refusal.stderr
        ends = await group_committed(kafka_admin, group, bank)
        assert sum(ends.values()) == sum(1 for m in batch if m.topic == bank)  # unchanged

        high = planned(reset(group, bank, "--to-offset", "1000000", "--json"))
        assert [(p["new"], p["clamped"]) for p in high] == [
            (ends[p["partition"]], True) for p in high
        ]
        low = planned(
            reset(group, bank, "--partition", "1", "--to-offset", "-5", "--execute", "--json")
        )
        assert [(p["partition"], p["new"], p["clamped"]) for p in low] == [(1, 0, True)]
        assert await group_committed(kafka_admin, group, bank) == {**ends, 1: 0}
        bad = reset(group, bank, "--partition", "7", "--to-earliest")
        assert bad.returncode == 2, bad.stderr
        assert "no partition 7" in bad.stderr
