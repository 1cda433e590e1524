"""Kafka's own `kafka-consumer-groups` (the stack's tools jars, `make kafka`) sees a sink
group exactly as `essctl offsets` does: committed offset, end offset and lag per partition."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import counter_total, run_sink_until, sink_settings
from helpers.sinkdata import messages, produce, recent_slot

DESCRIBE = ("--describe", "--offsets", "--group")
Row = tuple[str, int, int, int, int]  # topic, partition, committed, end, lag


def kafka_view(group: str) -> set[Row]:
    done = subprocess.run(
        [sys.executable, "-m", "ess_stack", "kafka", "kafka-consumer-groups", *DESCRIBE, group],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = set()
    for line in done.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group:  # GROUP TOPIC PARTITION CURRENT END LAG ...
            rows.add((cols[1], int(cols[2]), int(cols[3]), int(cols[4]), int(cols[5])))
    return rows


def essctl_view(group: str, prefix: str) -> set[Row]:
    done = subprocess.run(
        [sys.executable, "-m", "ess_ctl", "offsets", "--group", group, "--json"],
        env={**os.environ, "ESS_TOPIC_PREFIX": prefix},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {
        (r["topic"], r["partition"], r["committed"], r["end"], r["lag"])
        for r in orjson.loads(done.stdout)["offsets"]
    }


async def test_kafka_consumer_groups_matches_essctl_offsets(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    first = messages(readings(seed_fleet(), recent_slot(2), seconds=4), topic_prefix)
    later = messages(readings(seed_fleet(), recent_slot(1), seconds=2), topic_prefix)
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
            await produce(producer, first)
            group = unique("g")
            config = sink_settings(
                settings, "local", await make_database("local"), topic_prefix, group
            )

            async def all_written(service: SinkService) -> bool:
                return counter_total(service, "rows_written") >= len(first)

            await run_sink_until(config, all_written)
            await produce(producer, later)  # arrives after the sink stopped: lag

        ours = essctl_view(group, topic_prefix)
        assert sum(lag for *_, lag in ours) == len(later)
        assert len({topic for topic, *_ in ours}) == 4  # the four telemetry topics
        assert kafka_view(group) == ours
