"""Prometheus scrapes exactly the services `make run` starts (local stack and compose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ess_stack.run import pipeline_services

ROOT = Path(__file__).resolve().parents[3]


def _ess_targets(config: str) -> dict[str, str]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "monitoring" / "prometheus" / config).read_text())
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "ess")
    return {sc["labels"]["service"]: sc["targets"][0] for sc in job["static_configs"]}


def test_local_prometheus_scrapes_every_service_with_metrics_on_its_port() -> None:
    expected = {s.name: f"127.0.0.1:{s.http_port}" for s in pipeline_services() if s.shows}
    assert _ess_targets("local.yml") == expected


def test_compose_prometheus_scrapes_the_same_services() -> None:
    assert set(_ess_targets("compose.yml")) == set(_ess_targets("local.yml"))
