"""The Parquet schema follows the clusters' columns and SQL types; rows survive the round trip."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pyarrow as pa

from ess_archive_layout.schema import (
    TIMESTAMP,
    arrow_schema,
    arrow_to_rows,
    decode_parquet,
    encode_parquet,
    file_columns,
    first_of_each_key,
    folded_metadata,
    folded_segments,
    rows_to_arrow,
)
from ess_common.model import TABLES
from ess_common.synthetic import readings, seed_fleet
from ess_tables.rows import columns, to_row

SQL_TO_ARROW = {
    "text": pa.string(),
    "smallint": pa.int16(),
    "bigint": pa.int64(),
    "double": pa.float64(),  # "double precision"
    "timestamptz": TIMESTAMP,
    "jsonb": pa.string(),
}


def _sql_types() -> dict[str, dict[str, str]]:
    sql = resources.files("ess_tables.migrations").joinpath("0001_wide_tables.sql").read_text()
    out: dict[str, dict[str, str]] = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", sql, re.S):
        lines = [ln.strip().split() for ln in body.strip().splitlines()]
        out[name] = {ln[0]: ln[1].rstrip(",") for ln in lines if ln[0] != "CONSTRAINT"}
    return out


def test_each_file_column_has_the_arrow_type_of_its_sql_type() -> None:
    sql = _sql_types()
    for table in TABLES:
        schema = arrow_schema(table)
        assert list(schema.names) == [c for c in columns(table) if c != "site"]
        for field in schema:
            assert field.type == SQL_TO_ARROW[sql[table][field.name]], (table, field.name)
        assert not schema.field("ts").nullable
        assert schema.field("soc_pct" if table != "etc" else "voltage_v").nullable


def _rows(table: str, n: int = 20) -> list[tuple[Any, ...]]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return [to_row(r) for r in readings(seed_fleet(), start, n) if r.table == table]


def test_rows_round_trip_through_parquet_with_the_site_from_the_path() -> None:
    for table in TABLES:
        rows = [r for r in _rows(table) if r[1] == "site2"]
        data = decode_parquet(encode_parquet(rows_to_arrow(table, rows)))
        assert data.schema.names == list(file_columns(table))
        assert arrow_to_rows(data, "site2") == rows


def test_the_first_reading_of_a_slot_wins_and_the_result_is_sorted() -> None:
    rows = [r for r in _rows("rack", 3) if r[1] == "site1"]
    later = [(*r[:5], r[5] + timedelta(seconds=1), *r[6:]) for r in rows]  # other read_at
    data = first_of_each_key(rows_to_arrow("rack", list(reversed(rows)) + later))
    assert data.num_rows == len(rows)
    kept = arrow_to_rows(data, "site1")
    assert kept == sorted(rows, key=lambda r: (r[0], r[4]))


def test_the_footer_names_the_folded_segments() -> None:
    data = rows_to_arrow("pcs", [r for r in _rows("pcs") if r[1] == "site1"])
    raw = encode_parquet(
        data, folded_metadata(["_staging/a/seg-1.parquet", "_staging/a/seg-2.parquet"])
    )
    assert folded_segments(decode_parquet(raw)) == (
        "_staging/a/seg-1.parquet",
        "_staging/a/seg-2.parquet",
    )
    assert folded_segments(decode_parquet(encode_parquet(data))) == ()
