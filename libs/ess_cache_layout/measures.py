"""What the cache aggregates: the key measurements per table, and the bucket resolutions.

A measurement has one short name across tables (`power` is `power_w` on a bank
and `active_power_w` on a PCS) and a number of decimals: sums are kept as exact
integers of `10**-decimals` units, so they do not depend on the order in which
readings arrive, and a rebuild from SQL gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from ess_common.model import Table


@dataclass(frozen=True)
class Measure:
    name: str  # the name in keys, blobs and the CLI
    column: str  # the reading field / table column it comes from
    decimals: int  # sums are integers of 10**-decimals units

    @property
    def scale(self) -> float:
        return float(10**self.decimals)


def _m(name: str, column: str, decimals: int) -> Measure:
    return Measure(name, column, decimals)


# Decimals keep a site-day sum far below 2**53 (exact in a double) at fleet scale:
# e.g. 2,000 racks x 86,400 s x 4.2 V at 6 decimals = 7e14.
MEASURES: dict[Table, tuple[Measure, ...]] = {
    "bank": (
        _m("soc", "soc_pct", 3),
        _m("voltage", "voltage_v", 3),
        _m("current", "current_a", 3),
        _m("power", "power_w", 1),
        _m("cell_v_max", "cell_v_max", 6),
        _m("cell_v_min", "cell_v_min", 6),
        _m("module_t_max", "module_t_max_c", 3),
        _m("module_t_min", "module_t_min_c", 3),
    ),
    "rack": (
        _m("soc", "soc_pct", 3),
        _m("voltage", "voltage_v", 3),
        _m("current", "current_a", 3),
        _m("cell_v_max", "cell_v_max", 6),
        _m("cell_v_min", "cell_v_min", 6),
        _m("module_t_max", "module_t_max_c", 3),
        _m("module_t_min", "module_t_min_c", 3),
    ),
    "pcs": (
        _m("soc", "soc_pct", 3),
        _m("voltage", "voltage_ll_v", 3),
        _m("current", "current_a", 3),
        _m("power", "active_power_w", 1),
    ),
    "etc": (
        _m("voltage", "voltage_v", 3),
        _m("current", "current_a", 3),
        _m("power", "active_power_w", 1),
    ),
}

MEASURE_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(m.name for measures in MEASURES.values() for m in measures)
)


def measure(table: Table, name: str) -> Measure:
    for m in MEASURES[table]:
        if m.name == name:
            return m
    raise KeyError(f"{table} has no measurement {name!r}")


@dataclass(frozen=True)
class Resolution:
    name: str
    seconds: int


RESOLUTIONS: tuple[Resolution, ...] = (
    Resolution("1m", 60),
    Resolution("15m", 900),
    Resolution("1h", 3600),
    Resolution("1d", 86400),
)
RESOLUTION_BY_NAME = {r.name: r for r in RESOLUTIONS}
DAY_S = 86400


def bucket_start(slot: int, seconds: int) -> int:
    return slot - slot % seconds
