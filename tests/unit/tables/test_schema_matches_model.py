"""The migration's typed columns must be exactly the data model's fields."""

from __future__ import annotations

import re
from importlib import resources

from ess_common.model import TABLES
from ess_tables.rows import columns


def _migration_columns() -> dict[str, list[str]]:
    sql = resources.files("ess_tables.migrations").joinpath("0001_wide_tables.sql").read_text()
    tables: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", sql, re.S):
        tables[name] = [
            line.strip().split()[0]
            for line in body.strip().splitlines()
            if not line.strip().startswith("CONSTRAINT")
        ]
    return tables


def test_every_table_has_one_column_per_model_field_in_the_row_order() -> None:
    migrated = _migration_columns()
    assert set(migrated) == set(TABLES)
    for table in TABLES:
        assert migrated[table] == [*columns(table), "written_at"], table
