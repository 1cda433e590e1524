"""The project's own query shapes: what the index manager assumes when nothing is recorded.

Each shape is the SQL one of our readers sends (the cache rebuild, `essctl loss`,
the dashboards' per-device and per-bank reads), with `$n` placeholders and the
names of the values that fill them, so `bench` can run it on real data.
"""

from __future__ import annotations

from dataclasses import dataclass

from ess_common.model import TABLES, Table
from ess_tables.workload import Query

_IDENTITY: dict[Table, tuple[str, ...]] = {
    "bank": ("site", "bank_id"),
    "rack": ("site", "bank_id", "rack_id"),
    "pcs": ("site", "unit_id"),
    "etc": ("site", "unit_id"),
}
_MEASURES: dict[Table, str] = {
    "bank": "soc_pct, voltage_v, current_a, power_w, cell_v_min, cell_v_max",
    "rack": "soc_pct, voltage_v, current_a, cell_v_min, cell_v_max, module_t_max_c",
    "pcs": "active_power_w, reactive_power_var, frequency_hz, dc_power_w",
    "etc": "active_power_w, frequency_hz, ambient_t_c",
}
_SUMMARY: dict[Table, str] = {
    "bank": "avg(soc_pct), min(cell_v_min), max(cell_v_max)",
    "rack": "avg(soc_pct), min(cell_v_min), max(cell_v_max), max(module_t_max_c)",
    "pcs": "avg(active_power_w), max(active_power_w)",
    "etc": "avg(active_power_w), max(active_power_w)",
}


@dataclass(frozen=True)
class Shape:
    name: str
    table: Table
    sql: str
    params: tuple[str, ...]  # names of the sample values that fill $1, $2, ...

    def query(self, calls: int = 1) -> Query:
        return Query(self.sql, calls, "known", self.name)


def _where(names: tuple[str, ...]) -> str:
    conds = [f"{c} = ${i}" for i, c in enumerate(names, 1)]
    n = len(names)
    return " AND ".join([*conds, f"ts >= ${n + 1}", f"ts < ${n + 2}"])


def shapes(table: Table) -> list[Shape]:
    ident = _IDENTITY[table]
    unit = "per-device" if table != "bank" else "per-bank"
    found = [
        Shape(
            f"dashboard {unit} time range",
            table,
            f"SELECT ts, {_MEASURES[table]} FROM {table} WHERE {_where(ident)} ORDER BY ts",  # noqa: S608 - fixed fragments
            (*ident, "from", "to"),
        ),
        Shape(
            f"dashboard {unit} per minute (a Grafana time series)",
            table,
            f"SELECT time_bucket('1 minute', ts) AS minute, {_SUMMARY[table]}"  # noqa: S608
            f" FROM {table} WHERE {_where(ident)} GROUP BY 1 ORDER BY 1",
            (*ident, "from", "to"),
        ),
        Shape(
            "essctl loss: rows per device and hour of a site",
            table,
            "SELECT device_id, date_bin('1 hour', ts, $2::timestamptz), count(*)"  # noqa: S608
            f" FROM {table} WHERE site = $1 AND ts >= $2 AND ts < $3 GROUP BY 1, 2",
            ("site", "from", "to"),
        ),
        Shape(
            "cache rebuild: latest reading per device",
            table,
            f"SELECT DISTINCT ON (device_id) * FROM {table}"  # noqa: S608
            " WHERE ts >= $1 ORDER BY device_id, ts DESC",
            ("recent",),
        ),
    ]
    if table == "rack":
        found.insert(
            1,
            Shape(
                "dashboard per-bank time range (racks of one bank, per minute)",
                table,
                f"SELECT rack_id, time_bucket('1 minute', ts) AS minute, {_SUMMARY[table]}"  # noqa: S608
                f" FROM rack WHERE {_where(('site', 'bank_id'))} GROUP BY 1, 2",
                ("site", "bank_id", "from", "to"),
            ),
        )
    return found


def shapes_of(name: str) -> list[Shape]:
    """`shapes` of a table known by its catalog name (none for a table that is not ours)."""
    for table in TABLES:
        if table == name:
            return shapes(table)
    return []
