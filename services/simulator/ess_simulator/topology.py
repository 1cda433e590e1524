"""The fleet laid out: sites (one Modbus TCP gateway each) and their units.

Behind each site's port, unit ids run in order: each bank's BMS followed by
its racks, then the PCS, then the aux meter. Site1 with bank1 of 8 racks is
unit 1 = site1/bank1, units 2..9 = site1/bank1/rack1..8, 10 = site1/pcs1,
11 = site1/etc1. With `scale: N` the site list repeats; copy k >= 2 of a
site gets the id "<id>-<k>".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from ess_simulator.config import ConfigError, FleetConfig, ScheduleConfig

MAX_UNIT_ID = 247  # highest Modbus unicast address


class DeviceKind(StrEnum):
    """Device kinds; they name the telemetry tables (etc = aux/meter)."""

    BANK = "bank"
    RACK = "rack"
    PCS = "pcs"
    ETC = "etc"


@dataclass(frozen=True, slots=True)
class DevicePlan:
    device_id: str
    site_id: str
    kind: DeviceKind
    unit_id: int
    bank_index: int | None = None  # 1-based, for banks and racks
    rack_index: int | None = None  # 1-based within the bank, for racks


@dataclass(frozen=True, slots=True)
class BankPlan:
    index: int  # 1-based
    name: str
    racks: int


@dataclass(frozen=True, slots=True)
class SitePlan:
    site_id: str
    name: str
    position: int  # 0-based place in the fleet: port = base_port + position
    protocol: str  # "sunspec" or "vendor"
    banks: tuple[BankPlan, ...]
    devices: tuple[DevicePlan, ...]
    schedule: ScheduleConfig
    framing: str = "tcp"  # "tcp" (MBAP) or "rtu" (RTU frames over TCP)

    @property
    def rack_count(self) -> int:
        return sum(bank.racks for bank in self.banks)


def _devices(site_id: str, banks: tuple[BankPlan, ...]) -> tuple[DevicePlan, ...]:
    devices: list[DevicePlan] = []
    unit = 1
    for bank in banks:
        bank_id = f"{site_id}/{bank.name}"
        devices.append(DevicePlan(bank_id, site_id, DeviceKind.BANK, unit, bank.index))
        unit += 1
        for rack in range(1, bank.racks + 1):
            devices.append(
                DevicePlan(
                    f"{bank_id}/rack{rack}", site_id, DeviceKind.RACK, unit, bank.index, rack
                )
            )
            unit += 1
    devices.append(DevicePlan(f"{site_id}/pcs1", site_id, DeviceKind.PCS, unit))
    devices.append(DevicePlan(f"{site_id}/etc1", site_id, DeviceKind.ETC, unit + 1))
    if unit + 1 > MAX_UNIT_ID:
        raise ConfigError(f"site {site_id} needs {unit + 1} unit ids, at most {MAX_UNIT_ID} fit")
    return tuple(devices)


def plan_fleet(config: FleetConfig) -> tuple[SitePlan, ...]:
    """Every site of the fleet, scale copies included, in port order."""
    sites: list[SitePlan] = []
    for copy in range(1, config.scale + 1):
        for site in config.sites:
            site_id = site.id if copy == 1 else f"{site.id}-{copy}"
            name = site.name or site.id
            banks = tuple(
                BankPlan(index, bank, racks)
                for index, (bank, racks) in enumerate(site.banks.items(), start=1)
            )
            sites.append(
                SitePlan(
                    site_id=site_id,
                    name=name if copy == 1 else f"{name}-{copy}",
                    position=len(sites),
                    protocol=site.protocol,
                    banks=banks,
                    devices=_devices(site_id, banks),
                    schedule=config.site_schedule(site),
                    framing=site.framing,
                )
            )
    counts = Counter(site.site_id for site in sites)
    duplicates = sorted(site_id for site_id, count in counts.items() if count > 1)
    if duplicates:
        raise ConfigError(f"site ids used twice: {duplicates}")
    if config.base_port and config.base_port + len(sites) - 1 > 65535:
        raise ConfigError(f"{len(sites)} sites do not fit above base port {config.base_port}")
    return tuple(sites)
