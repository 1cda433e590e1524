"""The per-site summary the dashboards show first, from the latest reading of each device.

Pure: the service reads the latest readings from Redis, calls `summarize`,
and stores the result as JSON under `<prefix>:summary:<site>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ess_common.model import Table


@dataclass(frozen=True)
class LatestReading:
    device: str
    table: Table
    slot: int
    values: Mapping[str, Any]


def _number(values: Mapping[str, Any], name: str) -> float | None:
    value = values.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize(
    site: str, latest: Iterable[LatestReading], now: int, stale_after_s: int
) -> dict[str, Any]:
    readings = sorted(latest, key=lambda r: r.device)
    pcs_power = [
        p
        for r in readings
        if r.table == "pcs"
        if (p := _number(r.values, "active_power_w")) is not None
    ]
    rack_soc = [
        s for r in readings if r.table == "rack" if (s := _number(r.values, "soc_pct")) is not None
    ]
    hottest: dict[str, Any] | None = None
    worst: dict[str, Any] | None = None
    for r in readings:
        if r.table not in ("rack", "bank"):
            continue
        t_max = _number(r.values, "module_t_max_c")
        if t_max is not None and (hottest is None or t_max > hottest["module_t_max_c"]):
            hottest = {"device": r.device, "module_t_max_c": t_max}
        v_max, v_min = _number(r.values, "cell_v_max"), _number(r.values, "cell_v_min")
        if v_max is not None and v_min is not None:
            spread = v_max - v_min
            if worst is None or spread > worst["spread_v"]:
                worst = {
                    "device": r.device,
                    "spread_v": spread,
                    "cell_v_max": v_max,
                    "cell_v_min": v_min,
                }
    stale = [
        {"device": r.device, "last_slot": r.slot, "age_s": now - r.slot}
        for r in readings
        if now - r.slot > stale_after_s
    ]
    return {
        "site": site,
        "computed_at": now,
        "devices": len(readings),
        "newest_slot": max((r.slot for r in readings), default=None),
        "pcs_power_w": sum(pcs_power) if pcs_power else None,
        "rack_soc_pct": (
            {
                "n": len(rack_soc),
                "min": min(rack_soc),
                "max": max(rack_soc),
                "mean": sum(rack_soc) / len(rack_soc),
            }
            if rack_soc
            else None
        ),
        "hottest_module": hottest,
        "worst_cell_spread": worst,
        "stale_after_s": stale_after_s,
        "stale": stale,
    }
