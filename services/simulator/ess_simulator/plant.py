"""The PCS and the site meter: the AC side of the banks' DC power.

The PCS converts the sum of the banks' DC power with a fixed efficiency; the
meter sits on the PCS feeder and reads what the PCS delivers, with its own
small measurement error. Energy counters come from the schedule's integrals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ess_simulator import events
from ess_simulator.noise import symmetric
from ess_simulator.readings import BankReading, DcPortReading, MeterReading, PcsReading
from ess_simulator.schedule import PowerSchedule

EFFICIENCY = 0.975
NOMINAL_LL_V = 690.0
SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True, slots=True)
class PlantInputs:
    key: int
    second: int
    schedule: PowerSchedule
    rated_w: float
    ambient_c: float
    lagged_power_w: float
    grid_hz: float
    counter_base_wh: float
    bank_shares: tuple[float, ...]  # each bank's share of the site's power
    event_policy: events.EventPolicy


def _ac_power(dc_power_w: float) -> float:
    return dc_power_w * EFFICIENCY if dc_power_w > 0 else dc_power_w / EFFICIENCY


def pcs_reading(inputs: PlantInputs, banks: tuple[BankReading, ...]) -> PcsReading:
    key, second, t = inputs.key, inputs.second, float(inputs.second)
    dc_power = sum(bank.power_w for bank in banks)
    power = _ac_power(dc_power)
    reactive = 0.03 * inputs.rated_w * math.sin(t / 97.0) + 0.002 * inputs.rated_w * symmetric(
        key, second, 1
    )
    apparent = math.hypot(power, reactive)
    power_factor = math.copysign(abs(power) / apparent, power) if apparent > 1.0 else 1.0
    voltage_ll = NOMINAL_LL_V * (
        1.0 + 0.005 * math.sin(t / 613.0) + 0.001 * symmetric(key, second, 2)
    )
    load = abs(_ac_power(inputs.lagged_power_w)) / inputs.rated_w
    discharged = inputs.schedule.discharged_wh(t)
    charged = inputs.schedule.charged_wh(t)
    capacity = sum(bank.capacity_wh for bank in banks)
    soc = sum(bank.soc_pct * bank.capacity_wh for bank in banks) / capacity
    soh = sum(bank.soh_pct for bank in banks) / len(banks)
    ports = tuple(
        DcPortReading(
            index=bank.index,
            name=bank.name,
            voltage_v=bank.voltage_v,
            current_a=bank.current_a,
            power_w=bank.power_w,
            discharged_wh=(inputs.counter_base_wh + discharged) * share,
            charged_wh=(inputs.counter_base_wh + charged) * share,
            temp_c=bank.module_temp_avg_c,
        )
        for bank, share in zip(banks, inputs.bank_shares, strict=True)
    )
    return PcsReading(
        power_w=power,
        reactive_var=reactive,
        apparent_va=apparent,
        power_factor=power_factor,
        current_a=apparent / (SQRT3 * voltage_ll),
        voltage_ll_v=voltage_ll,
        voltage_ln_v=voltage_ll / SQRT3,
        frequency_hz=inputs.grid_hz + 0.02 * math.sin(t / 41.0) + 0.003 * symmetric(key, second, 3),
        exported_wh=(inputs.counter_base_wh + discharged) * EFFICIENCY,
        imported_wh=(inputs.counter_base_wh + charged) / EFFICIENCY,
        dc_power_w=dc_power,
        dc_current_a=sum(bank.current_a for bank in banks),
        dc_discharged_wh=inputs.counter_base_wh + discharged,
        dc_charged_wh=inputs.counter_base_wh + charged,
        ambient_temp_c=inputs.ambient_c,
        cabinet_temp_c=inputs.ambient_c + 4.0 + 6.0 * load,
        heatsink_temp_c=inputs.ambient_c + 8.0 + 25.0 * load,
        transformer_temp_c=inputs.ambient_c + 5.0 + 20.0 * load,
        soc_pct=soc,
        soh_pct=soh,
        capacity_wh=capacity,
        available_wh=capacity * soc / 100.0 * soh / 100.0,
        running=True,
        alarm_bits=inputs.event_policy.bits(key, second, events.PCS_ALARM_BITS),
        ports=ports,
    )


def meter_reading(inputs: PlantInputs, pcs: PcsReading) -> MeterReading:
    key, second = inputs.key ^ 0x5EED, inputs.second
    power = pcs.power_w * (1.0 + 0.002 * symmetric(key, second, 1))
    return MeterReading(
        power_w=power,
        reactive_var=pcs.reactive_var,
        apparent_va=math.hypot(power, pcs.reactive_var),
        power_factor=pcs.power_factor,
        current_a=pcs.current_a * (1.0 + 0.002 * symmetric(key, second, 2)),
        voltage_ln_v=pcs.voltage_ln_v,
        voltage_ll_v=pcs.voltage_ll_v,
        frequency_hz=pcs.frequency_hz,
        exported_wh=pcs.exported_wh,
        imported_wh=pcs.imported_wh,
        event_bits=inputs.event_policy.bits(key, second, events.METER_EVENT_BITS),
    )
