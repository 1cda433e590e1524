"""The throw-away servers fault tests rely on really stop and come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from helpers.disposable import disposable_postgres


def test_a_disposable_postgres_can_be_stopped_and_restarted(tmp_path: Path) -> None:
    async def ping(dsn: str) -> int:
        conn = await asyncpg.connect(dsn, timeout=3)
        try:
            return int(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    with disposable_postgres(tmp_path) as pg:
        assert asyncio.run(ping(pg.dsn)) == 1
        pg.stop()
        with pytest.raises(ConnectionRefusedError):
            asyncio.run(ping(pg.dsn))
        pg.start()
        assert asyncio.run(ping(pg.dsn)) == 1
