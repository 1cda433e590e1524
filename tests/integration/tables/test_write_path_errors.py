"""The write path against a real database: a value no column can hold is a refused
row (isolated, the rest written); a value of the wrong Python type is a bug in our
code and stops the batch with nothing written and nothing marked refused."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from ess_common.model import DeviceId, RackValues, Reading
from ess_tables.rows import columns, to_row
from ess_tables.schema import migrate
from ess_tables.writer import write_batch
from helpers.common import DatabaseFactory
from helpers.sinkdata import recent_slot

DEVICE = DeviceId(table="rack", site="site1", bank=1, rack=1)


def _rows(n: int) -> list[tuple[object, ...]]:
    t0 = recent_slot(1)
    return [
        to_row(
            Reading(
                device=DEVICE,
                ts=t0 + timedelta(seconds=i),
                read_at=t0,
                values=RackValues(soc_pct=50.0, modules=16),
            )
        )
        for i in range(n)
    ]


def _with(row: tuple[object, ...], column: str, value: object) -> tuple[object, ...]:
    at = columns("rack").index(column)
    return (*row[:at], value, *row[at + 1 :])


async def test_a_value_out_of_range_is_refused_and_a_wrong_type_is_a_bug(
    make_database: DatabaseFactory,
) -> None:
    conn = await asyncpg.connect(await make_database("local"))
    try:
        await migrate(conn)
        rows = _rows(6)
        rows[2] = _with(rows[2], "quality", 70_000)  # smallint: the database refuses it
        written = await write_batch(conn, {"rack": rows})
        assert [(r.table, r.index) for r in written.rejected] == [("rack", 2)]
        assert written.results["rack"].inserted == 5

        buggy = _rows(10)[6:]
        buggy[1] = _with(buggy[1], "quality", "70000")  # our bug: a str where an int belongs
        with pytest.raises(TypeError):
            await write_batch(conn, {"rack": buggy})
        assert await conn.fetchval("SELECT count(*) FROM rack") == 5
    finally:
        await conn.close()
