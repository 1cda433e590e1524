"""Every dashboard panel's PromQL runs without error on the local stack's Prometheus
(the one `make up` starts, with the repo's rules), and while readings flow
through a sink it scrapes, the core panels of the sink return data.

The data half uses a Prometheus of its own scraping a sink of its own (free
ports, private topics and database), so it never depends on a `make run`
someone else may or may not have going, and never disturbs one.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_dashboards.build import DASHBOARDS, SINK, Query
from ess_stack.config import StackConfig
from ess_stack.prometheus import RULES, Prometheus
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.disposable import free_port
from helpers.sink import SinkProcess, sink_env
from helpers.sinkdata import messages, produce, recent_slot


def _query(url: str, expr: str) -> list[Any]:
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", (expr, body)
    result: list[Any] = body["data"]["result"]
    return result


def _all_queries() -> list[Query]:
    return [q for d in DASHBOARDS for p in d.panels for q in p.queries]


def test_every_panel_query_evaluates_on_the_stacks_prometheus() -> None:
    url = Prometheus(StackConfig()).url
    for query in _all_queries():
        _query(url, query.expr)  # a syntax or type error fails here, with the query


def test_sink_core_panels_return_data_while_readings_flow(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory, tmp_path: Path
) -> None:
    asyncio.run(_flowing(settings, topic_prefix, make_database, tmp_path))


async def _flowing(
    settings: CommonSettings, prefix: str, make_database: DatabaseFactory, tmp_path: Path
) -> None:
    port = free_port()
    dsn = await make_database("local")
    env = sink_env(settings, "local", dsn, prefix, unique("g-dash"), ESS_HTTP_PORT=str(port))
    sink = SinkProcess(env, tmp_path / "sink.log")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {"job_name": "ess", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            }
        )
    )
    prometheus = Prometheus(StackConfig(state_dir=tmp_path, prometheus_port=free_port()), config)
    prometheus.provision()
    fleet = seed_fleet()
    async with pipeline_topics(settings.kafka_bootstrap, prefix):
        await sink.start()
        try:
            await sink.wait_started()
            await asyncio.to_thread(prometheus.start)
            async with ReadingProducer(settings.kafka_bootstrap, prefix) as producer:
                start = recent_slot(0.01)
                for second in range(15):  # one slot of the whole fleet per second
                    slot = start + timedelta(seconds=second)
                    await produce(producer, messages(readings(fleet, slot, 1), prefix))
                    await asyncio.sleep(1)
            deadline = time.monotonic() + 30
            empty = _empty_core(prometheus.url)
            while empty and time.monotonic() < deadline:
                await asyncio.sleep(1)
                empty = _empty_core(prometheus.url)
            assert empty == [], f"core panels without data: {empty}"
        finally:
            await sink.terminate()
            await asyncio.to_thread(prometheus.stop)


def _empty_core(url: str) -> list[str]:
    return [p.title for p in SINK.panels if p.core and not _query(url, p.queries[0].expr)]
