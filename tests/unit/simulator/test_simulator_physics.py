"""The battery model: SoC bounds, aggregates, determinism, poll-rate independence."""

from __future__ import annotations

import math

import pytest

from ess_simulator.battery import lfp_open_circuit_v
from ess_simulator.config import EventsConfig, FleetConfig, load_config
from ess_simulator.plant import EFFICIENCY
from ess_simulator.schedule import EPOCH_S, PowerSchedule
from ess_simulator.site_model import SiteModel
from ess_simulator.topology import plan_fleet

pytestmark = pytest.mark.unit

T0 = 1_750_000_000  # a fixed second so the tests never depend on the clock


def site_model(config: FleetConfig, site_id: str = "site2") -> SiteModel:
    plan = next(site for site in plan_fleet(config) if site.site_id == site_id)
    return SiteModel(plan, config)


@pytest.fixture(scope="module")
def config() -> FleetConfig:
    return load_config(None)


def test_soc_stays_within_5_and_95_percent_over_a_whole_period(config: FleetConfig) -> None:
    model = site_model(config)
    period = int(model.schedule.period_s) + 1
    socs = [
        rack.soc_pct
        for second in range(T0, T0 + period, 3)
        for bank in model.snapshot(second).banks
        for rack in bank.racks
    ]
    assert 5.0 <= min(socs) < 20.0  # sweeps low ...
    assert 80.0 < max(socs) <= 95.0  # ... and high, never beyond the limits


def test_soc_integrates_power_discharging_lowers_it(config: FleetConfig) -> None:
    model = site_model(config)
    for second in range(T0, T0 + 300, 7):
        power = model.schedule.power_w(second)
        soc_now = model.soc_pct(0, 0, second)
        soc_later = model.soc_pct(0, 0, second + 1)
        if abs(power) > 0.2 * model.schedule.amplitude_w:
            assert (soc_later < soc_now) == (power > 0)


def test_energy_counters_are_the_integral_of_power() -> None:
    schedule = PowerSchedule(amplitude_w=1000.0, period_s=3600.0, phase_rad=0.0)
    # Starting at the epoch: half a period discharges A * T / pi joules.
    half = EPOCH_S + 1800.0
    assert schedule.discharged_wh(half) == pytest.approx(1000.0 * 3600.0 / math.pi / 3600.0)
    assert schedule.charged_wh(half) == pytest.approx(0.0)
    full = EPOCH_S + 3600.0
    assert schedule.charged_wh(full) == pytest.approx(schedule.discharged_wh(full))
    samples = [schedule.discharged_wh(EPOCH_S + s) for s in range(0, 20_000, 250)]
    assert samples == sorted(samples)  # counters never go backwards


def test_bank_values_are_aggregates_of_its_racks(config: FleetConfig) -> None:
    bank = site_model(config).snapshot(T0).banks[1]
    racks = bank.racks
    assert len(racks) == 8
    assert bank.current_a == pytest.approx(sum(rack.current_a for rack in racks))
    assert bank.power_w == pytest.approx(sum(rack.power_w for rack in racks))
    assert bank.capacity_wh == pytest.approx(sum(rack.capacity_wh for rack in racks))
    assert bank.soc_pct == pytest.approx(sum(rack.soc_pct for rack in racks) / len(racks))
    assert bank.cell_v_max == max(rack.cell_v_max for rack in racks)
    assert bank.cell_v_min == min(rack.cell_v_min for rack in racks)
    hottest = racks[bank.module_temp_max_rack - 1]
    assert bank.module_temp_max_c == hottest.module_temp_max_c
    event_bits = 0
    for rack in racks:
        event_bits |= rack.event_bits
    assert bank.event_bits & event_bits == event_bits


def test_racks_differ_from_each_other(config: FleetConfig) -> None:
    racks = site_model(config).snapshot(T0).banks[0].racks
    assert len({round(rack.soc_pct, 3) for rack in racks}) == len(racks)
    assert len({round(rack.module_temp_avg_c, 3) for rack in racks}) == len(racks)


def test_cells_look_like_lfp(config: FleetConfig) -> None:
    model = site_model(config)
    volts, temps = [], []
    for second in range(T0, T0 + 400, 5):
        for bank in model.snapshot(second).banks:
            for rack in bank.racks:
                volts += [rack.cell_v_min, rack.cell_v_max]
                temps += [rack.module_temp_min_c, rack.module_temp_max_c]
                assert rack.cell_v_min <= rack.cell_v_avg <= rack.cell_v_max
    assert min(volts) > 3.1
    assert max(volts) < 3.5
    assert min(temps) > 5.0
    assert max(temps) < 50.0
    assert lfp_open_circuit_v(90.0) > lfp_open_circuit_v(50.0) > lfp_open_circuit_v(10.0)


def test_pcs_matches_the_banks_and_the_meter_matches_the_pcs(config: FleetConfig) -> None:
    snapshot = site_model(config).snapshot(T0 + 37)
    dc_power = sum(bank.power_w for bank in snapshot.banks)
    assert snapshot.pcs.dc_power_w == pytest.approx(dc_power)
    expected_ac = dc_power * EFFICIENCY if dc_power > 0 else dc_power / EFFICIENCY
    assert snapshot.pcs.power_w == pytest.approx(expected_ac)
    assert [port.power_w for port in snapshot.pcs.ports] == [b.power_w for b in snapshot.banks]
    assert snapshot.meter.power_w == pytest.approx(snapshot.pcs.power_w, rel=0.005)
    assert snapshot.meter.exported_wh == snapshot.pcs.exported_wh


def test_same_seed_same_values_other_seed_other_values(config: FleetConfig) -> None:
    first = site_model(config).snapshot(T0)
    again = site_model(config).snapshot(T0)
    other = site_model(config.model_copy(update={"seed": 7})).snapshot(T0)
    assert first == again
    assert first.banks[0].racks[0].soc_pct != other.banks[0].racks[0].soc_pct


def test_values_do_not_depend_on_poll_order_or_rate(config: FleetConfig) -> None:
    fast = site_model(config)
    for second in range(T0, T0 + 30):
        fast.snapshot(second)
    slow = site_model(config)
    assert slow.snapshot(T0 + 29) == fast.snapshot(T0 + 29)


def test_warnings_and_alarms_appear_now_and_then(config: FleetConfig) -> None:
    events = EventsConfig(window_s=60, probability=0.3)
    model = site_model(config.model_copy(update={"events": events}), "site1")
    flagged = sum(
        1 for second in range(T0, T0 + 3600, 20) if model.snapshot(second).banks[0].event_bits
    )
    assert 0 < flagged < 180
