"""Anomaly rules: threshold checks on each new reading, configured in YAML.

Pure logic: `RuleEvaluator` sees readings and returns the anomalies they
raise. The service hands them to Redis together with the reading, and the Lua
script adds them to the site's feed only if the reading was new, so a replay
never raises an anomaly twice. `device_stale` is checked against the wall
clock in Redis (see store.py), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ess_cache.decode import CacheReading
from ess_cache_layout.measures import MEASURES
from ess_common.settings import ConfigError

Rule = Literal[
    "cell_voltage_spread",
    "module_temperature_high",
    "module_temperature_low",
    "soc_out_of_range",
    "soc_jump",
    "device_stale",
]
RULES: tuple[Rule, ...] = get_args(Rule)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True


class CellVoltageSpread(_Section):
    max_v: float = Field(default=0.10, gt=0)


class ModuleTemperature(_Section):
    max_c: float = 50.0
    min_c: float = 0.0


class SocRange(_Section):
    min_pct: float = Field(default=5.0, ge=0, le=100)
    max_pct: float = Field(default=95.0, ge=0, le=100)


class SocJump(_Section):
    max_change_pct: float = Field(default=5.0, gt=0)
    within_s: int = Field(default=10, ge=1)


class DeviceStale(_Section):
    after_s: int = Field(default=30, ge=1)


class AnomalyRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cell_voltage_spread: CellVoltageSpread = CellVoltageSpread()
    module_temperature: ModuleTemperature = ModuleTemperature()
    soc_range: SocRange = SocRange()
    soc_jump: SocJump = SocJump()
    device_stale: DeviceStale = DeviceStale()
    repeat_after_s: int = Field(default=60, ge=0)


def load_rules(path: Path | None) -> AnomalyRules:
    """Rules from `path`, or the packaged defaults; one readable error if invalid."""
    where = str(path) if path else "ess_cache/rules.default.yaml"
    try:
        text = (
            path.read_text()
            if path
            else resources.files("ess_cache").joinpath("rules.default.yaml").read_text()
        )
        return AnomalyRules.model_validate(yaml.safe_load(text) or {})
    except OSError as exc:
        raise ConfigError(f"cannot read anomaly rules {where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"anomaly rules {where} are not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid anomaly rules in {where}: {problems}") from None


@dataclass(frozen=True, slots=True)
class Anomaly:
    device: str
    slot: int
    rule: Rule
    value: float
    limit: float


def _index(name: str) -> dict[str, int]:
    return {
        t: [m.name for m in ms].index(name)
        for t, ms in MEASURES.items()
        if name in [m.name for m in ms]
    }


_SOC = _index("soc")
_CELL_MAX = _index("cell_v_max")
_CELL_MIN = _index("cell_v_min")
_TEMP_MAX = _index("module_t_max")
_TEMP_MIN = _index("module_t_min")


class RuleEvaluator:
    """Checks readings against the rules; remembers the last SoC and report per device.

    Judging the same reading twice (it was fetched again after a rewind) gives
    the same answer, so an anomaly is not lost when its first judgement was
    never applied; Redis drops it if it was.
    """

    def __init__(self, rules: AnomalyRules) -> None:
        self.rules = rules
        self._soc_seen: dict[str, tuple[int, float, tuple[int, float] | None]] = {}
        self._last_raised: dict[tuple[str, Rule], int] = {}

    def forget(self) -> None:
        """Start afresh: after a rewind the readings come again from an earlier point."""
        self._soc_seen.clear()
        self._last_raised.clear()

    def evaluate(self, reading: CacheReading) -> list[Anomaly]:
        found: list[Anomaly] = []
        table = reading.device.table
        values = reading.measures
        r = self.rules
        if r.cell_voltage_spread.enabled and table in _CELL_MAX:
            hi, lo = values[_CELL_MAX[table]], values[_CELL_MIN[table]]
            if hi is not None and lo is not None and hi - lo > r.cell_voltage_spread.max_v:
                found.append(
                    self._make(reading, "cell_voltage_spread", hi - lo, r.cell_voltage_spread.max_v)
                )
        if r.module_temperature.enabled and table in _TEMP_MAX:
            hot, cold = values[_TEMP_MAX[table]], values[_TEMP_MIN[table]]
            if hot is not None and hot > r.module_temperature.max_c:
                found.append(
                    self._make(reading, "module_temperature_high", hot, r.module_temperature.max_c)
                )
            if cold is not None and cold < r.module_temperature.min_c:
                found.append(
                    self._make(reading, "module_temperature_low", cold, r.module_temperature.min_c)
                )
        if table in _SOC:
            found.extend(self._soc(reading, values[_SOC[table]]))
        if not found:
            return found
        return [a for a in found if self._first_in_a_while(a)]

    def _soc(self, reading: CacheReading, soc: float | None) -> list[Anomaly]:
        if soc is None:
            return []
        out: list[Anomaly] = []
        r = self.rules
        if r.soc_range.enabled:
            if soc < r.soc_range.min_pct:
                out.append(self._make(reading, "soc_out_of_range", soc, r.soc_range.min_pct))
            elif soc > r.soc_range.max_pct:
                out.append(self._make(reading, "soc_out_of_range", soc, r.soc_range.max_pct))
        before = self._soc_before(reading.key, reading.slot, soc)
        if r.soc_jump.enabled and before is not None:
            gap = reading.slot - before[0]
            change = soc - before[1]
            if gap <= r.soc_jump.within_s and abs(change) > r.soc_jump.max_change_pct:
                out.append(self._make(reading, "soc_jump", change, r.soc_jump.max_change_pct))
        return out

    def _soc_before(self, device: str, slot: int, soc: float) -> tuple[int, float] | None:
        """The device's SoC reading before `slot` (also when `slot` is seen again)."""
        seen = self._soc_seen.get(device)
        if seen is None:
            self._soc_seen[device] = (slot, soc, None)
            return None
        last_slot, last_soc, before = seen
        if slot == last_slot:
            return before  # the same reading again (a redelivery): judge it the same way
        if slot < last_slot:
            return None  # older than what we saw: a late reading, no jump to judge
        self._soc_seen[device] = (slot, soc, (last_slot, last_soc))
        return last_slot, last_soc

    @staticmethod
    def _make(reading: CacheReading, rule: Rule, value: float, limit: float) -> Anomaly:
        return Anomaly(reading.key, reading.slot, rule, value, limit)

    def _first_in_a_while(self, anomaly: Anomaly) -> bool:
        key = (anomaly.device, anomaly.rule)
        last = self._last_raised.get(key)
        recent = last is not None and abs(anomaly.slot - last) < self.rules.repeat_after_s
        if recent and last != anomaly.slot:
            return False
        self._last_raised[key] = anomaly.slot
        return True
