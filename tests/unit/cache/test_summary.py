"""The site summary from the latest readings: totals, extremes and stale devices."""

from __future__ import annotations

from ess_cache.summary import LatestReading, summarize


def test_summary_totals_extremes_and_stale_devices() -> None:
    latest = [
        LatestReading("s1/pcs1", "pcs", 1000, {"active_power_w": 250_000.0}),
        LatestReading("s1/pcs2", "pcs", 1000, {"active_power_w": -50_000.0}),
        LatestReading(
            "s1/bank1/rack1",
            "rack",
            1000,
            {"soc_pct": 40.0, "module_t_max_c": 33.0, "cell_v_max": 3.31, "cell_v_min": 3.29},
        ),
        LatestReading(
            "s1/bank1/rack2",
            "rack",
            1000,
            {"soc_pct": 60.0, "module_t_max_c": 41.5, "cell_v_max": 3.35, "cell_v_min": 3.20},
        ),
        LatestReading("s1/bank1/rack3", "rack", 900, {"soc_pct": 50.0}),
        LatestReading("s1/etc1", "etc", 1000, {"ambient_t_c": 21.0}),
    ]
    summary = summarize("s1", latest, now=1005, stale_after_s=30)
    assert summary["devices"] == 6
    assert summary["pcs_power_w"] == 200_000.0
    assert summary["rack_soc_pct"] == {"n": 3, "min": 40.0, "max": 60.0, "mean": 50.0}
    assert summary["hottest_module"] == {"device": "s1/bank1/rack2", "module_t_max_c": 41.5}
    assert summary["worst_cell_spread"]["device"] == "s1/bank1/rack2"
    assert abs(summary["worst_cell_spread"]["spread_v"] - 0.15) < 1e-9
    assert summary["stale"] == [{"device": "s1/bank1/rack3", "last_slot": 900, "age_s": 105}]
    assert summary["newest_slot"] == 1000


def test_an_empty_site_has_no_figures() -> None:
    summary = summarize("s9", [], now=1000, stale_after_s=30)
    assert summary["devices"] == 0
    assert summary["pcs_power_w"] is None
    assert summary["rack_soc_pct"] is None
    assert summary["hottest_module"] is None
