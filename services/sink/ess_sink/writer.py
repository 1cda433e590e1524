"""The write path: COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING.

Policy for a second, different value of an existing slot: the first write
wins. A slot is one poll of one device; a later copy of it can only come from
a replay or a retry of the same poll, so keeping the stored row is both
correct and what makes any replay leave the table unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ess_common.db import quote_ident
from ess_common.model import TABLES, Table
from ess_sink.rows import NATURAL_KEY, columns


@dataclass(frozen=True)
class WriteResult:
    table: Table
    rows: int
    inserted: int

    @property
    def duplicates(self) -> int:
        return self.rows - self.inserted


def _stage(table: Table) -> str:
    return f"ess_stage_{table}"


def _statements(table: Table) -> tuple[str, str]:
    if table not in TABLES:  # identifiers below are built only from the fixed table set
        raise ValueError(f"unknown table {table!r}")
    cols = ", ".join(quote_ident(c) for c in columns(table))
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {_stage(table)} "
        f"(LIKE {quote_ident(table)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    # Identifiers come from the fixed table set and are quoted.
    move = (
        f"INSERT INTO {quote_ident(table)} ({cols}) SELECT {cols} FROM {_stage(table)} "  # noqa: S608
        f"ON CONFLICT ({', '.join(NATURAL_KEY)}) DO NOTHING"
    )
    return create, move


_SQL = {t: _statements(t) for t in TABLES}


async def write_rows(
    conn: asyncpg.Connection, table: Table, rows: Sequence[tuple[Any, ...]]
) -> WriteResult:
    """Write one batch in one transaction; returns how many rows were new."""
    if not rows:
        return WriteResult(table, 0, 0)
    create, move = _SQL[table]
    async with conn.transaction():
        await conn.execute(create)
        await conn.copy_records_to_table(_stage(table), records=rows, columns=list(columns(table)))
        status = await conn.execute(move)
    return WriteResult(table, len(rows), int(status.rsplit(" ", 1)[1]))
