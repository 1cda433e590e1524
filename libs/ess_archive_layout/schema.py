"""The Parquet schema of each table, taken from the tables' columns, and rows to and from it.

Column order and names are `ess_tables.rows.columns(table)` (what the
clusters store, minus their own `written_at`) without `site`: the site is a
key of the path (`site=site1/`), and Hive-style readers (Spark, BigQuery,
DuckDB, pyarrow's datasets) refuse or shadow a column that is both in the
files and in the path; they add it from the path. Types follow the SQL types
of `migrations/0001_wide_tables.sql` (a unit test compares them):
text -> string, smallint -> int16, bigint -> int64, double precision ->
float64, timestamptz -> timestamp[us, UTC], jsonb -> string holding JSON.
Files are zstd-compressed, sorted by (device_id, ts), with dictionary
encoding for the repetitive text columns and statistics per row group,
so a reader filtering on a device or a time range skips most of a file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, get_args

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ess_common.model import VALUES_BY_TABLE, Table, measurement_fields
from ess_tables.rows import IDENTITY_COLUMNS, columns

TIMESTAMP = pa.timestamp("us", tz="UTC")
FOLDED_KEY = b"ess.folded"  # footer metadata: segments rolled up into this part
TABLE_KEY = b"ess.table"
KEY_COLUMNS = ("device_id", "ts")
PATH_COLUMN = "site"  # in the path, not in the files
SITE_AT = 1  # where `columns(table)` has the site


def file_columns(table: Table) -> tuple[str, ...]:
    return tuple(c for c in columns(table) if c != PATH_COLUMN)


def _measurement_type(table: Table, name: str) -> pa.DataType:
    annotation = VALUES_BY_TABLE[table].model_fields[name].annotation
    return pa.int64() if int in get_args(annotation) else pa.float64()


@cache
def arrow_schema(table: Table) -> pa.Schema:
    fixed: dict[str, pa.DataType] = {
        "device_id": pa.string(),
        **dict.fromkeys(IDENTITY_COLUMNS[table], pa.int16()),
        "ts": TIMESTAMP,
        "read_at": TIMESTAMP,
        "quality": pa.int16(),
        **{f: _measurement_type(table, f) for f in measurement_fields(table)},
        "extras": pa.string(),
    }
    not_null = {"device_id", "ts", "read_at", "quality", *IDENTITY_COLUMNS[table]}
    return pa.schema(
        [pa.field(c, fixed[c], nullable=c not in not_null) for c in file_columns(table)],
        metadata={TABLE_KEY: table.encode()},
    )


def rows_to_arrow(table: Table, rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Row tuples in `columns(table)` order (the sink's rows, of one site) as an Arrow
    table of the file schema (the site column left out)."""
    schema = arrow_schema(table)
    if not rows:
        return schema.empty_table()
    values = list(zip(*rows, strict=True))
    del values[SITE_AT]
    arrays = [pa.array(v, type=f.type) for v, f in zip(values, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def arrow_to_rows(data: pa.Table, site: str) -> list[tuple[Any, ...]]:
    """The inverse of `rows_to_arrow`: tuples in `columns(table)` order, for the writer."""
    values: list[list[Any]] = [col.to_pylist() for col in data.columns]
    values.insert(SITE_AT, [site] * data.num_rows)
    return list(zip(*values, strict=True))


def first_of_each_key(data: pa.Table) -> pa.Table:
    """One row per (device_id, ts), the first in table order; sorted by (device_id, ts)."""
    if data.num_rows == 0:
        return data
    indexed = data.append_column("__i", pa.array(range(data.num_rows), pa.int64()))
    firsts = indexed.group_by(list(KEY_COLUMNS), use_threads=False).aggregate([("__i", "min")])
    kept = data.take(firsts["__i_min"])
    return kept.sort_by([(c, "ascending") for c in KEY_COLUMNS])


def conform(table: Table, data: pa.Table) -> pa.Table:
    """`data` with exactly this table's schema (column order, types); metadata replaced."""
    schema = arrow_schema(table)
    return data.select(list(schema.names)).cast(schema)


def encode_parquet(
    data: pa.Table,
    metadata: Mapping[bytes, bytes] | None = None,
    row_group_rows: int = 256 * 1024,
    compression_level: int = 3,
) -> bytes:
    schema = data.schema.with_metadata({**(data.schema.metadata or {}), **(metadata or {})})
    sink = io.BytesIO()
    pq.write_table(
        data.replace_schema_metadata(schema.metadata),
        sink,
        compression="zstd",
        compression_level=compression_level,
        row_group_size=row_group_rows,
        use_dictionary=["device_id"],
        write_statistics=True,
    )
    return sink.getvalue()


def decode_parquet(raw: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    return pq.read_table(pa.BufferReader(raw), columns=list(columns) if columns else None)


def folded_segments(data_or_schema: pa.Table | pa.Schema) -> tuple[str, ...]:
    schema = data_or_schema if isinstance(data_or_schema, pa.Schema) else data_or_schema.schema
    raw = (schema.metadata or {}).get(FOLDED_KEY)
    return tuple(raw.decode().split("\n")) if raw else ()


def folded_metadata(segments: Sequence[str]) -> dict[bytes, bytes]:
    return {FOLDED_KEY: "\n".join(segments).encode()}


def ts_range_s(data: pa.Table) -> tuple[int, int]:
    """First and last slot (epoch seconds) of a non-empty table."""
    bounds = pc.min_max(data["ts"]).as_py()
    return int(bounds["min"].timestamp()), int(bounds["max"].timestamp())
