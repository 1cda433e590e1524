"""A stored row reads back as the reading that was written (the cache rebuild relies on it)."""

from __future__ import annotations

from datetime import UTC, datetime

from ess_common.synthetic import readings, seed_fleet
from ess_tables.rows import columns, from_row, to_row


def test_every_table_reads_back_what_was_written() -> None:
    written = list(readings(seed_fleet(), datetime(2026, 12, 1, tzinfo=UTC), seconds=2))
    assert {r.table for r in written} == {"bank", "rack", "pcs", "etc"}
    for reading in written:
        row = dict(zip(columns(reading.table), to_row(reading), strict=True))
        assert from_row(reading.table, row) == reading
