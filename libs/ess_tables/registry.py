"""The fleet registry's tables (migration 0002) in one cluster: read, register, retire,
maintenance. Every statement takes its values as parameters; the table names are
fixed text, never formatted from input.

Registration (from the collector, through Kafka and each sink) only ever moves
`commissioned_at` earlier and never touches `retired_at`: a device that keeps
appearing in an inventory is not un-retired, and one removed from it is not
silently retired. Retirement and maintenance are the operator's (`essctl fleet`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ess_common.fleet_records import DeviceRecord, SiteRecord
from ess_loss.service_time import FleetRegistry, Maintenance, RegisteredDevice


class RegistryError(Exception):
    """An operator's change that cannot be made; the message is for a person."""


@dataclass(frozen=True)
class DeviceRow:
    device: str
    site: str
    table: str
    commissioned_at: datetime
    retired_at: datetime | None
    registered_by: str


@dataclass(frozen=True)
class MaintenanceRow:
    id: str
    site: str
    device: str | None
    starts_at: datetime
    ends_at: datetime | None
    reason: str
    opened_by: str


_UPSERT_DEVICE = """
INSERT INTO fleet_device (device_id, site, table_name, commissioned_at, registered_by)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (device_id) DO UPDATE SET
    commissioned_at = LEAST(fleet_device.commissioned_at, EXCLUDED.commissioned_at),
    updated_at = now()
WHERE EXCLUDED.commissioned_at < fleet_device.commissioned_at
"""

_UPSERT_SITE = """
INSERT INTO fleet_site (site, time_zone) VALUES ($1, $2)
ON CONFLICT (site) DO UPDATE SET time_zone = EXCLUDED.time_zone, updated_at = now()
WHERE fleet_site.time_zone IS DISTINCT FROM EXCLUDED.time_zone
"""


async def register(
    conn: asyncpg.Connection, sites: Iterable[SiteRecord], devices: Iterable[DeviceRecord]
) -> None:
    """Upsert collector registrations in one transaction (idempotent)."""
    async with conn.transaction():
        await conn.executemany(_UPSERT_SITE, [(s.site, s.time_zone) for s in sites])
        await conn.executemany(
            _UPSERT_DEVICE,
            [(d.device, d.site, d.table, d.commissioned_at, d.registered_by) for d in devices],
        )


async def devices(conn: asyncpg.Connection, site: str | None = None) -> list[DeviceRow]:
    rows = await conn.fetch(
        "SELECT device_id, site, table_name, commissioned_at, retired_at, registered_by"
        " FROM fleet_device WHERE $1::text IS NULL OR site = $1 ORDER BY device_id",
        site,
    )
    return [DeviceRow(*r) for r in rows]


async def maintenance(conn: asyncpg.Connection, site: str | None = None) -> list[MaintenanceRow]:
    rows = await conn.fetch(
        "SELECT id, site, device_id, starts_at, ends_at, reason, opened_by"
        " FROM fleet_maintenance WHERE $1::text IS NULL OR site = $1 ORDER BY starts_at, id",
        site,
    )
    return [MaintenanceRow(*r) for r in rows]


async def zones(conn: asyncpg.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in await conn.fetch("SELECT site, time_zone FROM fleet_site")}


def _s(value: datetime) -> int:
    return int(value.timestamp())


async def load(conn: asyncpg.Connection) -> FleetRegistry:
    """The whole registry of this cluster, for loss accounting."""
    return FleetRegistry.of(
        (
            RegisteredDevice(
                d.device,
                d.site,
                d.table,
                _s(d.commissioned_at),
                None if d.retired_at is None else _s(d.retired_at),
            )
            for d in await devices(conn)
        ),
        (
            Maintenance(
                m.id,
                m.site,
                m.device,
                _s(m.starts_at),
                None if m.ends_at is None else _s(m.ends_at),
                m.reason,
            )
            for m in await maintenance(conn)
        ),
        await zones(conn),
    )


async def retire(conn: asyncpg.Connection, device: str, at: datetime) -> DeviceRow:
    """Set `retired_at`; refuses an unknown device, a time before commissioning, or a
    device already retired at another time."""
    row = await conn.fetchrow(
        "SELECT device_id, site, table_name, commissioned_at, retired_at, registered_by"
        " FROM fleet_device WHERE device_id = $1 FOR UPDATE",
        device,
    )
    if row is None:
        raise RegistryError(f"unknown device {device!r}: not in the fleet registry")
    found = DeviceRow(*row)
    if at < found.commissioned_at:
        raise RegistryError(
            f"{device} was commissioned at {found.commissioned_at.isoformat()},"
            f" after {at.isoformat()}"
        )
    if found.retired_at is not None and found.retired_at != at:
        raise RegistryError(f"{device} is already retired at {found.retired_at.isoformat()}")
    await conn.execute(
        "UPDATE fleet_device SET retired_at = $2, updated_at = now() WHERE device_id = $1",
        device,
        at,
    )
    return DeviceRow(found.device, found.site, found.table, found.commissioned_at, at, "")


async def known_site(conn: asyncpg.Connection, site: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM fleet_device WHERE site = $1)"
            " OR EXISTS (SELECT 1 FROM fleet_site WHERE site = $1)",
            site,
        )
    )


def new_maintenance_id() -> str:
    return uuid.uuid4().hex[:12]


async def open_maintenance(conn: asyncpg.Connection, row: MaintenanceRow) -> None:
    """Insert a maintenance window (the same id in both clusters); checks site and device."""
    if not await known_site(conn, row.site):
        raise RegistryError(f"unknown site {row.site!r}: not in the fleet registry")
    if row.device is not None:
        site = await conn.fetchval("SELECT site FROM fleet_device WHERE device_id = $1", row.device)
        if site is None:
            raise RegistryError(f"unknown device {row.device!r}: not in the fleet registry")
        if site != row.site:
            raise RegistryError(f"{row.device} belongs to site {site}, not {row.site}")
    await conn.execute(
        "INSERT INTO fleet_maintenance (id, site, device_id, starts_at, ends_at, reason, opened_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        row.id,
        row.site,
        row.device,
        row.starts_at,
        row.ends_at,
        row.reason,
        row.opened_by,
    )


async def end_maintenance(conn: asyncpg.Connection, id_: str, at: datetime) -> MaintenanceRow:
    """Close an open maintenance window at `at` (after its start)."""
    row = await conn.fetchrow(
        "SELECT id, site, device_id, starts_at, ends_at, reason, opened_by"
        " FROM fleet_maintenance WHERE id = $1 FOR UPDATE",
        id_,
    )
    if row is None:
        raise RegistryError(f"unknown maintenance {id_!r}")
    found = MaintenanceRow(*row)
    if found.ends_at is not None and found.ends_at <= at:
        raise RegistryError(f"maintenance {id_} already ended at {found.ends_at.isoformat()}")
    if at <= found.starts_at:
        raise RegistryError(
            f"maintenance {id_} starts at {found.starts_at.isoformat()}: end it after that"
        )
    await conn.execute(
        "UPDATE fleet_maintenance SET ends_at = $2, updated_at = now() WHERE id = $1", id_, at
    )
    return MaintenanceRow(
        found.id, found.site, found.device, found.starts_at, at, found.reason, found.opened_by
    )
