"""The fleet file: which sites exist, how their batteries behave, where they listen.

Loaded once at start; a bad file fails with one readable message (ConfigError).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ess_simulator.faults import FaultSpec

_ID = re.compile(r"^[a-z][a-z0-9_-]*$")
DEFAULT_CONFIG = "fleet.default.yaml"
DEFAULT_VENDOR_MAP = "vendor_map.yaml"


class ConfigError(ValueError):
    """The fleet file cannot be used; the message says why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BatteryConfig(_Frozen):
    modules_per_rack: int = Field(default=8, ge=1, le=64)
    cells_per_module: int = Field(default=52, ge=1, le=512)
    cell_capacity_ah: float = Field(default=280.0, gt=0.0, le=2000.0)


class ScheduleConfig(_Frozen):
    """Site power follows a sinusoid; SoC swings around its centre with it."""

    period_s: float = Field(default=300.0, ge=10.0, le=86_400.0)
    c_rate: float = Field(default=0.5, gt=0.0, le=2.0)  # power amplitude / energy capacity
    soc_center_pct: float = Field(default=50.0, ge=20.0, le=80.0)
    soc_swing_pct: float = Field(default=35.0, ge=0.0, le=40.0)
    noise_pct: float = Field(default=1.0, ge=0.0, le=10.0)  # measurement noise
    thermal_lag_s: float = Field(default=45.0, ge=0.0, le=3600.0)


class EventsConfig(_Frozen):
    window_s: int = Field(default=120, ge=10, le=86_400)
    probability: float = Field(default=0.05, ge=0.0, le=1.0)  # per device and window


class SiteConfig(_Frozen):
    id: str
    name: str | None = None
    banks: dict[str, int] = Field(min_length=1)  # bank name -> number of racks
    protocol: Literal["sunspec", "vendor"] = "sunspec"
    framing: Literal["tcp", "rtu"] = "tcp"  # rtu: a serial gateway's RTU frames over TCP
    schedule: dict[str, float] = Field(default_factory=dict)  # overrides of the fleet's

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value) or "/" in value:
            raise ValueError("use lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("banks")
    @classmethod
    def _banks_shape(cls, banks: dict[str, int]) -> dict[str, int]:
        for name, racks in banks.items():
            if not _ID.match(name):
                raise ValueError(f"bank name {name!r}: use lower-case letters and digits")
            if not 1 <= racks <= 64:
                raise ValueError(f"bank {name}: racks must be 1..64")
        return banks


class FleetConfig(_Frozen):
    seed: int = 42
    scale: int = Field(default=1, ge=1, le=2000)  # repeat the site list this many times
    host: str = "127.0.0.1"
    base_port: int = Field(default=15020, ge=0, le=65535)  # 0: any free port per site
    control_port: int | None = Field(default=15019, ge=0, le=65535)  # None: no HTTP control
    grid_hz: Literal[50, 60] = 50
    # fast: own framing, images packed once per second and served by slicing (benchmarks)
    serving: Literal["pymodbus", "fast"] = "pymodbus"
    vendor_map: str = DEFAULT_VENDOR_MAP  # relative to the fleet file, else packaged
    battery: BatteryConfig = BatteryConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    events: EventsConfig = EventsConfig()
    sites: list[SiteConfig] = Field(min_length=1)
    faults: dict[str, FaultSpec] = Field(default_factory=dict)

    def site_schedule(self, site: SiteConfig) -> ScheduleConfig:
        try:
            return ScheduleConfig(**{**self.schedule.model_dump(), **site.schedule})
        except ValidationError as exc:
            raise ConfigError(f"site {site.id} schedule: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "file"
    extra = f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: {error['msg']}{extra}"


def packaged_file(name: str) -> Path:
    return Path(str(resources.files("ess_simulator").joinpath(name)))


def load_config(path: Path | None = None) -> FleetConfig:
    """Read and validate a fleet file (the packaged default when None).

    The vendor map path comes back absolute: next to the fleet file if it is
    there, else the packaged one of that name.
    """
    path = path or packaged_file(DEFAULT_CONFIG)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read fleet file {path}: {exc}") from exc
    try:
        config = FleetConfig.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(f"fleet file {path}: {_first_error(exc)}") from exc
    for site in config.sites:
        config.site_schedule(site)
    vendor_map = Path(config.vendor_map)
    if not vendor_map.is_absolute():
        beside = path.parent / vendor_map
        vendor_map = beside if beside.exists() else packaged_file(vendor_map.name)
    return config.model_copy(update={"vendor_map": str(vendor_map.resolve())})
