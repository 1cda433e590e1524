"""Prometheus scrapes exactly the services `make run` starts (local stack and compose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ess_dashboards.build import DATASOURCE
from ess_stack.run import pipeline_services

ROOT = Path(__file__).resolve().parents[3]


def _ess_targets(config: str) -> dict[str, str]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "monitoring" / "prometheus" / config).read_text())
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "ess")
    return {sc["labels"]["service"]: sc["targets"][0] for sc in job["static_configs"]}


def test_local_prometheus_scrapes_every_service_with_metrics_on_its_port() -> None:
    expected = {s.name: f"127.0.0.1:{s.http_port}" for s in pipeline_services() if s.metrics}
    assert _ess_targets("local.yml") == expected


def test_compose_prometheus_scrapes_the_same_services() -> None:
    assert set(_ess_targets("compose.yml")) == set(_ess_targets("local.yml"))


def test_compose_provisions_prometheus_and_grafana_with_the_repo_files() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "--config.file=/etc/ess/prometheus/compose.yml" in services["prometheus"]["command"]
    assert "./monitoring:/etc/ess:ro" in services["prometheus"]["volumes"]
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./monitoring/grafana/dashboards:" in mounts
    assert "./monitoring/grafana/provisioning:" in mounts
    source = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert source["uid"] == DATASOURCE.uid
