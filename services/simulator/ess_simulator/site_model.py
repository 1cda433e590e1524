"""One site's physics at any second: schedule -> racks -> banks -> PCS -> meter.

Everything is a function of (seed, site layout, second), so two simulators
with the same seed report the same values, whatever their poll rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ess_simulator import events
from ess_simulator.bank import MAX_C_RATE, bank_reading
from ess_simulator.battery import BatteryDesign, RackInputs, RackTraits, rack_reading
from ess_simulator.config import FleetConfig
from ess_simulator.noise import stable_key, symmetric, uniform
from ess_simulator.plant import PlantInputs, meter_reading, pcs_reading
from ess_simulator.readings import BankReading, MeterReading, PcsReading, Reading
from ess_simulator.schedule import EPOCH_S, TWO_PI, PowerSchedule
from ess_simulator.topology import DeviceKind, DevicePlan, SitePlan

SOC_MIN_PCT = 5.0
SOC_MAX_PCT = 95.0
_CACHE_SECONDS = 4  # readers straddling a second boundary still hit the cache


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    second: int
    banks: tuple[BankReading, ...]
    pcs: PcsReading
    meter: MeterReading


class SiteModel:
    """Readings of every device of one site, computed once per second on demand."""

    def __init__(self, plan: SitePlan, config: FleetConfig) -> None:
        self.plan = plan
        self._config = config
        self._design = BatteryDesign(
            modules_per_rack=config.battery.modules_per_rack,
            cells_per_module=config.battery.cells_per_module,
            cell_capacity_ah=config.battery.cell_capacity_ah,
        )
        self._key = stable_key(config.seed, plan.site_id)
        capacity_wh = plan.rack_count * self._design.rack_capacity_wh
        self.schedule = PowerSchedule(
            amplitude_w=plan.schedule.c_rate * capacity_wh,
            period_s=plan.schedule.period_s * (1.0 + 0.1 * symmetric(self._key, 1)),
            phase_rad=TWO_PI * uniform(self._key, 2),
        )
        self._rated_w = MAX_C_RATE * capacity_wh
        self._counter_base_wh = capacity_wh * (300.0 + 300.0 * uniform(self._key, 3))
        self._bank_shares = tuple(bank.racks / plan.rack_count for bank in plan.banks)
        self._rack_traits: list[list[RackTraits]] = []
        self._rack_shares: list[list[float]] = []
        for bank in plan.banks:
            traits = [
                RackTraits.from_seed(
                    config.seed, f"{plan.site_id}/{bank.name}/rack{rack}", self._design
                )
                for rack in range(1, bank.racks + 1)
            ]
            total = sum(trait.weight for trait in traits)
            self._rack_traits.append(traits)
            self._rack_shares.append([trait.weight / total for trait in traits])
        self._events = events.EventPolicy(config.events.window_s, config.events.probability)
        self._cache: dict[int, SiteSnapshot] = {}

    def ambient_c(self, t: float) -> float:
        day = TWO_PI * (t - EPOCH_S) / 86_400.0
        return (
            22.0
            + 2.0 * symmetric(self._key, 4)
            + 4.0 * math.sin(day + TWO_PI * uniform(self._key, 5))
        )

    def soc_pct(self, bank_position: int, rack_position: int, t: float) -> float:
        """A rack's state of charge: centre + its offset + swing * schedule wave."""
        schedule = self.plan.schedule
        relative_share = self._rack_shares[bank_position][rack_position] * len(
            self._rack_shares[bank_position]
        )
        soc = (
            schedule.soc_center_pct
            + self._rack_traits[bank_position][rack_position].soc_offset_pct
            + schedule.soc_swing_pct * relative_share * self.schedule.soc_wave(t)
        )
        return min(max(soc, SOC_MIN_PCT), SOC_MAX_PCT)

    def snapshot(self, second: int) -> SiteSnapshot:
        cached = self._cache.get(second)
        if cached is None:
            cached = self._compute(second)
            if len(self._cache) >= _CACHE_SECONDS:
                self._cache.pop(min(self._cache))
            self._cache[second] = cached
        return cached

    def reading(self, device: DevicePlan, second: int) -> Reading:
        snapshot = self.snapshot(second)
        if device.kind is DeviceKind.PCS:
            return snapshot.pcs
        if device.kind is DeviceKind.ETC:
            return snapshot.meter
        assert device.bank_index is not None
        bank = snapshot.banks[device.bank_index - 1]
        if device.kind is DeviceKind.BANK:
            return bank
        assert device.rack_index is not None
        return bank.racks[device.rack_index - 1]

    def _compute(self, second: int) -> SiteSnapshot:
        t = float(second)
        schedule, config = self.plan.schedule, self._config
        site_power = self.schedule.power_w(t)
        lagged_power = self.schedule.power_w(t - schedule.thermal_lag_s)
        ambient = self.ambient_c(t)
        cycles = int((t - EPOCH_S) / 86_400.0 * 0.9)
        banks: list[BankReading] = []
        for b, bank in enumerate(self.plan.banks):
            bank_share = self._bank_shares[b]
            racks = tuple(
                rack_reading(
                    traits,
                    self._design,
                    RackInputs(
                        index=r + 1,
                        second=second,
                        soc_pct=self.soc_pct(b, r, t),
                        power_w=site_power * bank_share * self._rack_shares[b][r],
                        lagged_power_w=lagged_power * bank_share * self._rack_shares[b][r],
                        ambient_c=ambient,
                        noise_pct=schedule.noise_pct,
                        cycles_since_epoch=cycles,
                    ),
                    self._events,
                )
                for r, traits in enumerate(self._rack_traits[b])
            )
            own_events = self._events.bits(
                stable_key(self._key, bank.name),
                second,
                events.BATTERY_WARNING_BITS,
                events.BATTERY_ALARM_BITS,
            )
            banks.append(
                bank_reading(
                    bank.index,
                    bank.name,
                    racks,
                    self._design,
                    second=second,
                    own_event_bits=own_events,
                )
            )
        plant = PlantInputs(
            key=self._key,
            second=second,
            schedule=self.schedule,
            rated_w=self._rated_w,
            ambient_c=ambient,
            lagged_power_w=lagged_power,
            grid_hz=float(config.grid_hz),
            counter_base_wh=self._counter_base_wh,
            bank_shares=self._bank_shares,
            event_policy=self._events,
        )
        pcs = pcs_reading(plant, tuple(banks))
        return SiteSnapshot(
            second=second, banks=tuple(banks), pcs=pcs, meter=meter_reading(plant, pcs)
        )
