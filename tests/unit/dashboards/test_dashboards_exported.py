"""The dashboards' JSON in the repo is exactly what the code builds (re-export with
`python -m ess_dashboards` after a change), and each panel queries Prometheus."""

from __future__ import annotations

import json

from ess_dashboards.__main__ import EXPORT_DIR
from ess_dashboards.build import DASHBOARDS, LOSS_CRITICAL, LOSS_WARNING, render


def test_exported_json_equals_what_the_code_builds() -> None:
    assert sorted(p.name for p in EXPORT_DIR.glob("*.json")) == sorted(
        f"{d.uid}.json" for d in DASHBOARDS
    )
    for spec in DASHBOARDS:
        assert (EXPORT_DIR / f"{spec.uid}.json").read_text() == render(spec), spec.uid


def test_every_panel_has_prometheus_queries_and_loss_panels_draw_the_thresholds() -> None:
    for spec in DASHBOARDS:
        board = json.loads(render(spec))
        assert board["uid"] == spec.uid
        for panel in board["panels"]:
            assert panel["datasource"]["type"] == "prometheus"
            assert panel["targets"], panel["title"]
            assert all(t["expr"] for t in panel["targets"])
    loss = json.loads(render(next(d for d in DASHBOARDS if d.uid == "ess-loss")))
    steps = loss["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, LOSS_WARNING, LOSS_CRITICAL]
