"""A sink's database stopped while readings arrive: Prometheus, scraping the sink,
fires the repo's lag alert (read back over its HTTP API), and resolves it once the
database is back and the sink has caught up.

Everything here is private: a disposable TimescaleDB, topics under the test's
own prefix, the sink as a process on a free port and a Prometheus of its own
(the stack's binary) evaluating the repo's rule with a shortened `for:`.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_stack.config import StackConfig
from ess_stack.prometheus import RULES, Prometheus
from helpers.common import pipeline_topics, unique
from helpers.disposable import DisposablePostgres, disposable_postgres, free_port
from helpers.sink import SinkProcess, sink_env
from helpers.sinkdata import messages, produce, recent_slot

ALERT = "EssSinkLagHigh"
SLOTS = 90  # x 67 devices of the seed fleet = 6,030 readings, above the alert's 5,000


def _shortened_rule(name: str, for_: str) -> dict[str, Any]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return {**rule, "for": for_}
    raise AssertionError(f"{name} not in {RULES}")


def _private_prometheus(tmp_path: Path, sink_port: int) -> Prometheus:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        yaml.safe_dump({"groups": [{"name": "e2e", "rules": [_shortened_rule(ALERT, "5s")]}]})
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "ess",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{sink_port}"], "labels": {"service": "sink"}}
                        ],
                    }
                ],
            }
        )
    )
    prometheus = Prometheus(
        StackConfig(state_dir=tmp_path / "prom", prometheus_port=free_port()), config
    )
    prometheus.provision()
    return prometheus


def _alert_states(url: str) -> list[tuple[str, str]]:
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as resp:
        alerts = json.loads(resp.read())["data"]["alerts"]
    return [
        (a["labels"]["cluster"], a["state"]) for a in alerts if a["labels"]["alertname"] == ALERT
    ]


async def _until(what: str, check: Any, timeout_s: float, sink: SinkProcess) -> float:
    started = time.monotonic()
    while not await asyncio.to_thread(check):
        assert sink.running, f"sink exited; see {sink.log_file}"
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s}s"
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def test_database_outage_fires_the_lag_alert_and_it_resolves_after(
    settings: CommonSettings, topic_prefix: str, tmp_path: Path
) -> None:
    with disposable_postgres(tmp_path) as db:
        asyncio.run(_scenario(settings, topic_prefix, db, tmp_path))


async def _scenario(
    settings: CommonSettings, prefix: str, db: DisposablePostgres, tmp_path: Path
) -> None:
    port = free_port()
    env = sink_env(
        settings,
        "local",
        db.dsn,
        prefix,
        unique("g-alert"),
        ESS_HTTP_PORT=str(port),
        ESS_SINK_LAG_INTERVAL_S="0.5",
        ESS_SINK_RETRY_INITIAL_S="0.2",
        ESS_SINK_RETRY_MAX_S="1",
        ESS_SINK_DB_CONNECT_TIMEOUT_S="2",
    )
    sink = SinkProcess(env, tmp_path / "sink.log")
    prometheus = _private_prometheus(tmp_path, port)
    async with pipeline_topics(settings.kafka_bootstrap, prefix):
        await sink.start()
        try:
            await sink.wait_started()
            await asyncio.to_thread(prometheus.start)
            await asyncio.to_thread(db.stop)
            batch = messages(readings(seed_fleet(), recent_slot(1), SLOTS), prefix)
            async with ReadingProducer(settings.kafka_bootstrap, prefix) as producer:
                await produce(producer, batch)
            fired = await _until(
                "firing",
                lambda: ("local", "firing") in _alert_states(prometheus.url),
                60,
                sink,
            )
            await asyncio.to_thread(db.start)
            resolved = await _until(
                "resolved", lambda: _alert_states(prometheus.url) == [], 90, sink
            )
            print(f"{ALERT}: firing {fired:.1f}s after the outage, resolved {resolved:.1f}s after")
        finally:
            await sink.terminate()
            await asyncio.to_thread(prometheus.stop)
