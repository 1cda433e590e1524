"""Synthetic readings for tests, benchmarks and load runs (not for production data).

Deterministic for a given seed, shaped like the seed fleet: sites of banks of
racks, one PCS and one aux meter each.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ess_common.model import (
    BankValues,
    DeviceId,
    EtcValues,
    Measurements,
    PcsValues,
    RackValues,
    Reading,
)

SEED_FLEET: dict[str, dict[int, int]] = {
    "site1": {1: 8},
    "site2": {1: 9, 2: 8},
    "site3": {1: 11},
    "site4": {1: 9},
}


@dataclass(frozen=True)
class Fleet:
    sites: dict[str, dict[int, int]]  # site -> bank -> racks

    def devices(self) -> list[DeviceId]:
        out: list[DeviceId] = []
        for site, banks in self.sites.items():
            for bank, racks in banks.items():
                out.append(DeviceId(table="bank", site=site, bank=bank))
                out.extend(
                    DeviceId(table="rack", site=site, bank=bank, rack=r)
                    for r in range(1, racks + 1)
                )
            out.append(DeviceId(table="pcs", site=site, unit=1))
            out.append(DeviceId(table="etc", site=site, unit=1))
        return out


def seed_fleet() -> Fleet:
    return Fleet(SEED_FLEET)


def scaled_fleet(devices_wanted: int, racks_per_bank: int = 10) -> Fleet:
    """About `devices_wanted` devices: sites of one bank with `racks_per_bank` racks."""
    per_site = racks_per_bank + 3
    n_sites = max(1, round(devices_wanted / per_site))
    return Fleet({f"site{i}": {1: racks_per_bank} for i in range(1, n_sites + 1)})


def values_for(device: DeviceId, rng: random.Random) -> Measurements:
    soc = rng.uniform(10, 90)
    if device.table == "rack":
        vmin = rng.uniform(3.20, 3.30)
        return RackValues(
            soc_pct=round(soc, 1),
            soh_pct=98.5,
            voltage_v=round(vmin * 240, 1),
            current_a=round(rng.uniform(-120, 120), 1),
            cell_v_max=vmin + 0.03,
            cell_v_min=vmin,
            cell_v_avg=vmin + 0.015,
            module_t_max_c=31.5,
            module_t_min_c=24.0,
            module_t_avg_c=27.2,
            modules=16,
            state=3,
            alarm_bits=0,
            warning_bits=0,
        )
    if device.table == "bank":
        return BankValues(
            soc_pct=round(soc, 1),
            soh_pct=98.0,
            voltage_v=790.0,
            current_a=round(rng.uniform(-900, 900), 1),
            power_w=rng.uniform(-7e5, 7e5),
            cell_v_max=3.31,
            cell_v_min=3.25,
            module_t_max_c=32.0,
            module_t_min_c=23.5,
            strings_connected=8,
            state=3,
            alarm_bits=0,
        )
    if device.table == "pcs":
        p = rng.uniform(-1e6, 1e6)
        return PcsValues(
            active_power_w=p,
            reactive_power_var=0.0,
            frequency_hz=60.0,
            voltage_ll_v=380.0,
            dc_voltage_v=790.0,
            dc_power_w=p * 1.02,
            soc_pct=round(soc, 1),
            state=4,
            alarm_bits=0,
        )
    return EtcValues(
        active_power_w=rng.uniform(-1e6, 1e6),
        frequency_hz=60.0,
        voltage_v=380.0,
        energy_import_wh=1.2e9,
        ambient_t_c=21.5,
        humidity_pct=40.0,
    )


def readings(
    fleet: Fleet, start: datetime, seconds: int, seed: int = 1, skip: frozenset[str] = frozenset()
) -> Iterator[Reading]:
    """One reading per device per slot from `start` for `seconds` slots, slot-major order.

    Devices whose key is in `skip` are left out (a muted device: source loss).
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    devices = [d for d in fleet.devices() if d.key not in skip]
    for i in range(seconds):
        ts = start + timedelta(seconds=i)
        for device in devices:
            yield Reading(
                device=device,
                ts=ts,
                read_at=ts + timedelta(milliseconds=120),
                values=values_for(device, rng),
            )
