"""The write path: COPY into staging, then INSERT ... ON CONFLICT DO NOTHING, in one transaction.

Policy for a second, different value of an existing slot: the first write
wins. A slot is one poll of one device; a later copy of it can only come from
a replay or a retry of the same poll, so keeping the stored row is both
correct and what makes any replay leave the table unchanged (`written_at`
included: a replay rewrites nothing).

Staging tables are session-local temporary tables (`ON COMMIT DELETE ROWS`,
never WAL-logged). A batch is: BEGIN, one binary COPY per table present, one
statement that moves every table (data-modifying CTEs, so the per-table
counts of new rows come back in one round trip), COMMIT.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ess_common.db import quote_ident
from ess_common.db_errors import classify
from ess_common.model import TABLES, Table
from ess_tables.rejects import write_isolating_rejects
from ess_tables.rows import NATURAL_KEY, columns


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


def _checked(table: Table) -> Table:
    if table not in TABLES:  # identifiers below are built only from the fixed table set
        raise ValueError(f"unknown table {table!r}")
    return table


def _create_stage(table: Table) -> str:
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {_stage(_checked(table))} "
        f"(LIKE {quote_ident(table)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


def _move(table: Table) -> str:
    cols = ", ".join(quote_ident(c) for c in columns(_checked(table)))
    # Identifiers come from the fixed table set and are quoted.
    return (
        f"INSERT INTO {quote_ident(table)} ({cols}) SELECT {cols} FROM {_stage(table)} "  # noqa: S608
        f"ON CONFLICT ({', '.join(NATURAL_KEY)}) DO NOTHING"
    )


_COLUMNS = {t: list(columns(t)) for t in TABLES}
_CREATE = {t: _create_stage(t) for t in TABLES}
_MOVE = {t: _move(t) for t in TABLES}
STAGING_DDL = ";\n".join(_CREATE[t] for t in TABLES)  # one round trip (simple protocol)


@functools.cache
def _move_all(tables: tuple[Table, ...]) -> str:
    """One statement moving every staged table; returns new rows per table as columns."""
    moves = ", ".join(f"m_{t} AS ({_MOVE[t]} RETURNING 1)" for t in tables)
    counts = ", ".join(f"(SELECT count(*) FROM m_{t}) AS {t}" for t in tables)  # noqa: S608
    return f"WITH {moves} SELECT {counts}"


async def prepare_staging(conn: asyncpg.Connection) -> None:
    """Create this session's staging tables (the target tables must exist)."""
    await conn.execute(STAGING_DDL)


async def write_rows(
    conn: asyncpg.Connection, table: Table, rows: Sequence[tuple[Any, ...]]
) -> WriteResult:
    """Write one table's rows in one transaction; returns how many rows were new."""
    if not rows:
        return WriteResult(table, 0, 0)
    async with conn.transaction():
        await conn.execute(_CREATE[table])
        await conn.copy_records_to_table(_stage(table), records=rows, columns=_COLUMNS[table])
        status = await conn.execute(_MOVE[table])
    return WriteResult(table, len(rows), int(status.rsplit(" ", 1)[1]))


@dataclass(frozen=True)
class RejectedRow:
    table: Table
    index: int  # position in that table's rows of the batch
    error: BaseException


@dataclass
class BatchWrite:
    results: dict[Table, WriteResult] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)


def is_rejection(exc: BaseException) -> bool:
    """True when the database refused the data itself (not the connection or the server)."""
    kind = classify(exc)
    return kind is not None and not kind.retriable


async def write_batch(
    conn: asyncpg.Connection,
    tables: Mapping[Table, Sequence[tuple[Any, ...]]],
    *,
    staging_ready: bool = False,
) -> BatchWrite:
    """Every table of a batch in one transaction.

    `staging_ready`: `prepare_staging` already ran on this connection (saves a
    round trip). If the database refuses some row (a value out of a column's
    range, ...), the transaction is rolled back and each table is written
    again in halves until the refused rows stand alone; those come back in
    `rejected` and everything else is written. Any other error propagates:
    nothing of the batch may be considered written then.
    """
    present = tuple(t for t in TABLES if tables.get(t))
    out = BatchWrite()
    if not present:
        return out
    try:
        async with conn.transaction():
            if not staging_ready:
                await prepare_staging(conn)
            for table in present:
                await conn.copy_records_to_table(
                    _stage(table), records=tables[table], columns=_COLUMNS[table]
                )
            new = await conn.fetchrow(_move_all(present))
    except Exception as exc:
        if not is_rejection(exc):
            raise
    else:
        assert new is not None
        for table in present:
            out.results[table] = WriteResult(table, len(tables[table]), int(new[table]))
        return out
    for table in present:
        written, refused = await write_isolating_rejects(
            tables[table], functools.partial(write_rows, conn, table), is_rejection
        )
        out.results[table] = WriteResult(
            table, sum(w.rows for w in written), sum(w.inserted for w in written)
        )
        out.rejected.extend(RejectedRow(table, r.index, r.error) for r in refused)
    return out
