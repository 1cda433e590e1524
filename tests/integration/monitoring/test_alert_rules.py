"""The alert rules pass `promtool check rules`, every alert has a `promtool test
rules` case, and those cases pass (promtool comes with the stack's Prometheus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "monitoring" / "rules" / "ess.rules.yml"
RULE_TESTS = sorted((ROOT / "monitoring" / "rules" / "tests").glob("*.test.yml"))


def _promtool(*args: str, cwd: Path = ROOT) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make up` installs Debian's prometheus package"
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_and_both_prometheus_configs_pass_promtool_check() -> None:
    assert "SUCCESS" in _promtool("check", "rules", str(RULES))
    for config in ("local.yml", "compose.yml"):
        _promtool("check", "config", str(ROOT / "monitoring" / "prometheus" / config))


def test_every_alert_has_a_unit_test_and_they_all_pass() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")  # a case that expects the alert to fire
    }
    assert alerts - tested == set(), "alerts without a firing test case"
    out = _promtool("test", "rules", *(p.name for p in RULE_TESTS), cwd=RULE_TESTS[0].parent)
    assert out.count("SUCCESS") == len(RULE_TESTS), out
