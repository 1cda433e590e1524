"""asyncpg connection helpers: every connection has connect and command timeouts."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from pydantic import SecretStr


@dataclass(frozen=True)
class DbTimeouts:
    connect_s: float = 5.0
    command_s: float = 60.0


async def create_pool(
    dsn: SecretStr,
    *,
    min_size: int = 1,
    max_size: int = 4,
    timeouts: DbTimeouts | None = None,
    application_name: str = "ess",
) -> asyncpg.Pool:
    t = timeouts or DbTimeouts()
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn.get_secret_value(),
        min_size=min_size,
        max_size=max_size,
        timeout=t.connect_s,
        command_timeout=t.command_s,
        server_settings={"application_name": application_name},
    )
    return pool


async def connect(
    dsn: SecretStr, *, timeouts: DbTimeouts | None = None, application_name: str = "ess"
) -> asyncpg.Connection:
    t = timeouts or DbTimeouts()
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn.get_secret_value(),
        timeout=t.connect_s,
        command_timeout=t.command_s,
        server_settings={"application_name": application_name},
    )
    return conn


def quote_ident(name: str) -> str:
    """Quote an identifier that was already validated against the catalog."""
    return '"' + name.replace('"', '""') + '"'
