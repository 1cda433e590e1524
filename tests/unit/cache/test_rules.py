"""Each anomaly rule fires on its constructed case and stays quiet on normal data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ess_cache.decode import CacheReading
from ess_cache.rules import AnomalyRules, RuleEvaluator, load_rules
from ess_cache_layout.measures import MEASURES
from ess_common.model import DeviceId
from ess_common.settings import ConfigError

RACK = DeviceId(table="rack", site="s1", bank=1, rack=2)
PCS = DeviceId(table="pcs", site="s1", unit=1)
NORMAL = {
    "soc": 50.0,
    "cell_v_max": 3.31,
    "cell_v_min": 3.28,
    "module_t_max": 31.0,
    "module_t_min": 24.0,
}


def _reading(slot: int, device: DeviceId = RACK, **changes: float) -> CacheReading:
    values = {**NORMAL, **changes}
    measures = tuple(values.get(m.name) for m in MEASURES[device.table])
    return CacheReading(device, device.key, slot, measures, b"{}")


def _rules(
    evaluator: RuleEvaluator, *readings: CacheReading
) -> list[tuple[str, int, float, float]]:
    return [(a.rule, a.slot, a.value, a.limit) for r in readings for a in evaluator.evaluate(r)]


def test_normal_data_raises_nothing() -> None:
    evaluator = RuleEvaluator(AnomalyRules())
    quiet = [_reading(100 + i, soc=50.0 + 0.05 * i) for i in range(600)]
    quiet += [_reading(100 + i, PCS, soc=50.0) for i in range(600)]
    assert _rules(evaluator, *quiet) == []


@pytest.mark.parametrize(
    ("changes", "rule", "value", "limit"),
    [
        ({"cell_v_max": 3.45, "cell_v_min": 3.30}, "cell_voltage_spread", 0.15, 0.10),
        ({"module_t_max": 55.0}, "module_temperature_high", 55.0, 50.0),
        ({"module_t_min": -3.0}, "module_temperature_low", -3.0, 0.0),
        ({"soc": 4.0}, "soc_out_of_range", 4.0, 5.0),
        ({"soc": 96.0}, "soc_out_of_range", 96.0, 95.0),
    ],
)
def test_threshold_rules_fire_on_their_case(
    changes: dict[str, float], rule: str, value: float, limit: float
) -> None:
    evaluator = RuleEvaluator(AnomalyRules(soc_jump={"enabled": False}))
    found = _rules(evaluator, _reading(100), _reading(101, RACK, **changes))
    assert [(r, s, lim) for r, s, _, lim in found] == [(rule, 101, limit)]
    assert found[0][2] == pytest.approx(value)


def test_a_soc_jump_within_the_window_fires_and_a_slow_change_does_not() -> None:
    evaluator = RuleEvaluator(AnomalyRules())
    assert _rules(evaluator, _reading(100, soc=50.0), _reading(101, soc=56.0)) == [
        ("soc_jump", 101, 6.0, 5.0)
    ]
    # The same change spread over more than `within_s` (10 s) is not a jump.
    other = RuleEvaluator(AnomalyRules())
    assert _rules(other, _reading(100, soc=50.0), _reading(111, soc=56.0)) == []


def test_a_redelivered_reading_is_judged_as_before_and_late_ones_are_not_jumps() -> None:
    evaluator = RuleEvaluator(AnomalyRules())
    first = _rules(evaluator, _reading(100, soc=50.0), _reading(101, soc=60.0))
    again = _rules(evaluator, _reading(101, soc=60.0))  # fetched again after a rewind
    assert again == first == [("soc_jump", 101, 10.0, 5.0)]
    # A late reading (older than the last seen) is 50 % below it, but no jump is judged.
    assert _rules(evaluator, _reading(99, soc=10.0)) == []


def test_a_lasting_condition_is_reported_once_per_repeat_period() -> None:
    evaluator = RuleEvaluator(AnomalyRules(repeat_after_s=60))
    hot = [_reading(100 + i, module_t_max=58.0) for i in range(130)]
    assert [s for _, s, _, _ in _rules(evaluator, *hot)] == [100, 160, 220]


def test_disabled_rules_never_fire() -> None:
    rules = AnomalyRules(module_temperature={"enabled": False}, soc_range={"enabled": False})
    evaluator = RuleEvaluator(rules)
    assert _rules(evaluator, _reading(100, module_t_max=90.0, soc=1.0)) == []


def test_rules_load_from_yaml_and_bad_files_fail_with_one_message(tmp_path: Path) -> None:
    assert load_rules(None) == AnomalyRules()
    good = tmp_path / "rules.yaml"
    good.write_text("soc_range:\n  min_pct: 10\n  max_pct: 90\ndevice_stale:\n  after_s: 5\n")
    loaded = load_rules(good)
    assert (loaded.soc_range.min_pct, loaded.device_stale.after_s) == (10.0, 5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("soc_range:\n  min_pct: high\nunknown_rule: {}\n")
    with pytest.raises(ConfigError, match=r"soc_range\.min_pct.*unknown_rule"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_after_a_rewind_the_rules_judge_the_readings_again_from_the_start() -> None:
    evaluator = RuleEvaluator(AnomalyRules())
    first = _rules(evaluator, _reading(100, soc=50.0), _reading(101, soc=60.0))
    evaluator.forget()  # the partitions were rewound to slot 100
    again = _rules(evaluator, _reading(100, soc=50.0), _reading(101, soc=60.0))
    assert again == first == [("soc_jump", 101, 10.0, 5.0)]
