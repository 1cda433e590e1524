"""Loss percentages against hand-computed values, severity boundaries included."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ess_loss.lossmath import (
    SlotCounts,
    bits_of_runs,
    coalesce,
    device_loss,
    runs_of_set_bits,
    severity_of_counts,
    severity_of_pct,
    table_window_loss,
)

DAY = 86_400


def test_exactly_two_percent_is_ok_and_one_slot_more_is_a_warning() -> None:
    # 2 % of a day is 1,728 slots.
    assert severity_of_counts(1728, DAY) == "ok"
    assert severity_of_counts(1729, DAY) == "warning"
    assert severity_of_pct(2.0) == "ok"
    assert severity_of_pct(2.0000001) == "warning"


def test_exactly_five_percent_is_a_warning_and_above_is_critical() -> None:
    # 5 % of a day is 4,320 slots.
    assert severity_of_counts(4320, DAY) == "warning"
    assert severity_of_counts(4321, DAY) == "critical"
    assert severity_of_pct(5.0) == "warning"
    assert severity_of_pct(Fraction(50001, 10000)) == "critical"


def test_boundaries_hold_for_window_sizes_that_are_not_round() -> None:
    # 3 of 150 is exactly 2 %, 7 of 140 exactly 5 %: compared as integers.
    assert severity_of_counts(3, 150) == "ok"
    assert severity_of_counts(4, 150) == "warning"
    # 7 of 140 is exactly 5 %.
    assert severity_of_counts(7, 140) == "warning"


def test_no_loss_and_no_expectation_are_ok() -> None:
    assert severity_of_counts(0, DAY) == "ok"
    assert severity_of_counts(0, 0) == "ok"


def test_seed_figure_for_a_day_with_an_hour_missing_in_one_cluster() -> None:
    # 86,400 expected, 3,600 never reached Kafka, 1,800 more missing in the cluster.
    counts = SlotCounts(expected=DAY, reached=DAY - 3600, present=DAY - 5400)
    assert counts.source_loss == 3600
    assert counts.sink_loss == 1800
    assert counts.total_loss == 5400
    assert counts.source_pct == pytest.approx(4.1666667, abs=1e-6)
    assert counts.sink_pct == pytest.approx(2.0833333, abs=1e-6)
    assert counts.total_pct == pytest.approx(6.25)  # 1 - 81000 / 86400
    assert counts.severity == "critical"


def test_counts_reject_impossible_combinations() -> None:
    with pytest.raises(ValueError, match="present <= reached"):
        SlotCounts(expected=10, reached=5, present=6)


def test_device_loss_splits_source_and_sink_per_cluster() -> None:
    # Window of 10 slots. Kafka saw slots 0-7; local holds 0-7, cloud 0-3 and 8
    # (slot 8 came to cloud by a sync: it reached Kafka before the detector looked).
    kafka = bits_of_runs([(0, 8)])
    local = bits_of_runs([(0, 8)])
    cloud = bits_of_runs([(0, 4), (8, 9)])
    d = device_loss("site1/bank1", "site1", 10, kafka, {"local": local, "cloud": cloud})
    # reached = 0-8 (9 slots); slot 9 never reached Kafka: source loss 10 %.
    assert d.counts["local"] == SlotCounts(10, 9, 8)
    assert d.counts["cloud"] == SlotCounts(10, 9, 5)
    assert d.counts["local"].source_pct == pytest.approx(10.0)
    assert d.counts["local"].sink_pct == pytest.approx(10.0)  # slot 8
    assert d.counts["cloud"].sink_pct == pytest.approx(40.0)  # slots 4-7
    assert d.counts["cloud"].total_pct == pytest.approx(50.0)
    assert runs_of_set_bits(d.sink_missing["local"]) == [(8, 9)]
    assert runs_of_set_bits(d.sink_missing["cloud"]) == [(4, 8)]


def test_site_and_table_aggregates_sum_slots_not_percentages() -> None:
    # Two devices of site1 and one of site2, 100-slot window, one cluster.
    full = bits_of_runs([(0, 100)])
    kafka = {"site1/bank1": full, "site1/pcs1": bits_of_runs([(0, 90)]), "site2/bank1": full}
    present = {"local": {"site1/bank1": full, "site1/pcs1": bits_of_runs([(0, 90)])}}
    sites = {d: d.split("/")[0] for d in kafka}
    loss = table_window_loss(100, kafka, sites, kafka, present)
    by_site = loss.by_site("local")
    assert by_site["site1"] == SlotCounts(200, 190, 190)  # exactly 5 % source loss
    assert by_site["site1"].total_pct == pytest.approx(5.0)
    assert by_site["site1"].severity == "warning"
    assert by_site["site2"] == SlotCounts(100, 100, 0)  # all of it is sink loss
    assert loss.total("local") == SlotCounts(300, 290, 190)
    assert loss.total("local").total_pct == pytest.approx(36.666666, abs=1e-5)


def test_a_device_seen_nowhere_is_all_source_loss() -> None:
    loss = table_window_loss(60, ["site1/etc1"], {"site1/etc1": "site1"}, {}, {"cloud": {}})
    assert loss.total("cloud") == SlotCounts(60, 0, 0)
    assert loss.devices[0].sink_missing["cloud"] == 0


def test_runs_and_coalescing() -> None:
    bits = bits_of_runs([(0, 3), (10, 11), (13, 20)])
    assert runs_of_set_bits(bits) == [(0, 3), (10, 11), (13, 20)]
    assert runs_of_set_bits(0) == []
    assert runs_of_set_bits(1 << 86_399) == [(86_399, 86_400)]
    assert coalesce([(10, 11), (0, 3), (13, 20)], max_gap=2) == [(0, 3), (10, 20)]
    assert coalesce([(0, 3), (10, 11)], max_gap=7) == [(0, 11)]
    assert coalesce([(0, 3), (10, 11)], max_gap=6) == [(0, 3), (10, 11)]
