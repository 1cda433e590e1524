"""docker-compose.yml and k8s/ describe the same services `make run` starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ess_stack.run import pipeline_services

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def _k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "k8s").rglob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_compose_runs_every_pipeline_service_with_its_settings() -> None:
    services = _compose()["services"]
    for spec in pipeline_services():
        assert spec.name in services, f"{spec.name} missing from docker-compose.yml"
        compose = services[spec.name]
        assert compose["command"] == ["python", "-m", spec.module]
        for key, value in spec.env.items():
            assert compose["environment"][key] == value, (spec.name, key)


def test_compose_creates_topics_before_services_start() -> None:
    services = _compose()["services"]
    assert services["topics"]["command"] == ["python", "-m", "ess_stack", "topics"]
    for spec in pipeline_services():
        depends = services[spec.name]["depends_on"]
        assert depends["topics"]["condition"] == "service_completed_successfully"


WORKLOADS = ("Deployment", "StatefulSet")  # the collector: a spool volume per replica


def test_kubernetes_has_a_workload_for_every_service_module() -> None:
    commands = {
        tuple(c["command"])
        for d in _k8s_documents()
        if d.get("kind") in WORKLOADS
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    for spec in pipeline_services():
        assert ("python", "-m", spec.module) in commands, spec.module


def test_each_overlay_runs_the_sink_for_its_own_cluster() -> None:
    for overlay, cluster in (("onprem", "local"), ("cloud", "cloud")):
        doc = yaml.safe_load(
            (ROOT / "k8s" / "overlays" / overlay / "kustomization.yaml").read_text()
        )
        patches = " ".join(p["patch"] for p in doc["patches"])
        assert f"value: {cluster}" in patches, overlay


def test_the_collector_keeps_its_spool_per_replica_across_pod_deletions() -> None:
    (collector,) = [
        d
        for d in _k8s_documents()
        if d.get("kind") in WORKLOADS and "collector" in d["metadata"]["name"]
    ]
    assert collector["kind"] == "StatefulSet"
    claims = [c["metadata"]["name"] for c in collector["spec"]["volumeClaimTemplates"]]
    mounts = collector["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    spool = next(m for m in mounts if m["name"] in claims)
    env = {
        e["name"]: e.get("value")
        for e in collector["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ESS_COLLECTOR_SPOOL_DIR"].startswith(spool["mountPath"])


def test_grace_period_outlasts_the_drain_timeout() -> None:
    config = next(d for d in _k8s_documents() if d.get("kind") == "ConfigMap")
    drain = float(config["data"]["ESS_DRAIN_TIMEOUT_S"])
    for d in _k8s_documents():
        if d.get("kind") in WORKLOADS:
            assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain
