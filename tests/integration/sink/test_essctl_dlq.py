"""`essctl dlq`: list and filter the sink's dead letters, show one with its headers,
and re-drive them into a cluster once the cause is fixed: idempotent (a second
re-drive inserts nothing), a message that still fails is reported (exit 1), and
what each run re-drove is counted in Prometheus (through the stack's Pushgateway)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import delete_from_gateway
from prometheus_client.parser import text_string_to_metric_families

from ess_common.kafka import ReadingProducer
from ess_common.model import DeviceId
from ess_common.settings import CommonSettings
from ess_common.topics import telemetry_topic
from ess_ctl.pushed import DLQ_JOB
from ess_sink.service import SinkService
from ess_stack.config import StackConfig
from ess_stack.prometheus import Prometheus
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import counter_total, run_sink_until, sink_settings
from helpers.sinkdata import rack_payload, row_count

DEVICE = DeviceId(table="rack", site="site1", bank=1, rack=1)
KEY = DEVICE.key.encode()


def _essctl(args: list[str], prefix: str, dsn: str) -> tuple[int, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "ess_ctl", "dlq", *args],
        env={**os.environ, "ESS_TOPIC_PREFIX": prefix, "ESS_DB_LOCAL_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, orjson.loads(result.stdout) if "--json" in args else result.stdout


async def test_dead_letters_are_listed_shown_and_redriven_once_fixed(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    good = [rack_payload(DEVICE, now - timedelta(minutes=30, seconds=i)) for i in range(10)]
    too_old = rack_payload(
        DEVICE, now - timedelta(hours=3)
    )  # the sink below keeps 2 h; the fix: 30 days
    refused = rack_payload(
        DEVICE, now - timedelta(minutes=20), quality=40_000
    )  # no smallint holds it
    dsn = await make_database("local")
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        topic = telemetry_topic("rack", topic_prefix)
        async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
            for payload in [*good[:5], too_old, *good[5:], refused]:
                await (await producer.send_raw(topic, payload, KEY))

        async def handled(service: SinkService) -> bool:
            done = counter_total(service, "rows_written") + counter_total(service, "dlq")
            return done >= 12

        s = sink_settings(settings, "local", dsn, topic_prefix, unique("g"), sink_max_age_s=7200)
        await run_sink_until(s, handled)
        assert await row_count(dsn) == 10

        _, listed = _essctl(["list", "--json"], topic_prefix, dsn)
        letters = listed["dead_letters"]
        assert sorted(x["reason"] for x in letters) == ["db_rejected", "slot_out_of_bounds"]
        _, old_only = _essctl(
            ["list", "--reason", "slot_out_of_bounds", "--json"], topic_prefix, dsn
        )
        (old,) = old_only["dead_letters"]
        assert (old["topic"], old["offset"], old["sink"]) == (topic, "5", "local")
        _, text = _essctl(["list", "--table", "pcs"], topic_prefix, dsn)
        assert "0 shown" in text

        _, shown = _essctl(["show", old["id"], "--json"], topic_prefix, dsn)
        assert shown["reason"] == "slot_out_of_bounds"
        assert orjson.loads(shown["value"]) == orjson.loads(too_old)
        assert shown["key"] == DEVICE.key

        code, dry = _essctl(
            ["replay", "--cluster", "local", "--dry-run", "--json"], topic_prefix, dsn
        )
        assert (code, dry["selected"]) == (0, 2)
        assert await row_count(dsn) == 10  # a dry run writes nothing

        # The cause of the old slot is fixed (default bounds: 30 days); the overflow is not.
        code, first = _essctl(["replay", "--cluster", "local", "--json"], topic_prefix, dsn)
        assert code == 1  # one message still fails
        assert (first["inserted"], first["present"], first["still_failing"]) == (1, 0, 1)
        assert first["still_failing_by_reason"] == {"db_rejected": 1}
        assert await row_count(dsn) == 11

        args = ["replay", "--cluster", "local", "--reason", "slot_out_of_bounds", "--json"]
        code, again = _essctl(args, topic_prefix, dsn)
        assert (code, again["inserted"], again["present"]) == (0, 0, 1)  # idempotent
        assert await row_count(dsn) == 11
        await asyncio.to_thread(_redrives_are_counted_in_prometheus, settings, topic_prefix)


def _redrives_are_counted_in_prometheus(settings: CommonSettings, prefix: str) -> None:
    """Both real runs (not the dry run) added up in the Pushgateway; Prometheus scraped it."""
    gateway = settings.pushgateway_url
    assert gateway, "ESS_PUSHGATEWAY_URL is not set: run `make up`"
    group = {"job": DLQ_JOB, "prefix": prefix, "cluster": "local"}
    try:
        with urllib.request.urlopen(f"{gateway}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        held = {
            (s.name, s.labels["outcome"]): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if "outcome" in s.labels and all(s.labels.get(k) == v for k, v in group.items())
        }
        total, last = "ess_ctl_dlq_redriven_messages_total", "ess_ctl_dlq_redrive_last_run_messages"
        assert held == {
            (total, "inserted"): 1,
            (total, "present"): 1,
            (total, "still_failing"): 1,
            (last, "inserted"): 0,
            (last, "present"): 1,
            (last, "still_failing"): 0,
        }
        prometheus = Prometheus(StackConfig()).url
        expr = f'{total}{{prefix="{prefix}",cluster="local"}}'
        query = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        want = {"inserted": 1.0, "present": 1.0, "still_failing": 1.0}
        deadline = time.monotonic() + 40  # a scrape every 5 s; one may fall between the runs
        while True:
            with urllib.request.urlopen(query, timeout=5) as resp:
                result = orjson.loads(resp.read())["data"]["result"]
            seen = {r["metric"]["outcome"]: float(r["value"][1]) for r in result}
            if seen == want or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert seen == want
    finally:
        delete_from_gateway(
            gateway, job=DLQ_JOB, grouping_key={"prefix": prefix, "cluster": "local"}
        )
