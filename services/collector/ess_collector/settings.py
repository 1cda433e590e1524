"""Collector settings (`ESS_COLLECTOR_*`), on top of the common ones."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from ess_collector.modbus_frames import MAX_REGISTERS_PER_READ
from ess_common.settings import CommonSettings


def packaged_inventory() -> Path:
    """The inventory of the default simulator fleet, shipped with the package."""
    return Path(str(resources.files("ess_collector").joinpath("inventory.default.yaml")))


class CollectorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    collector_inventory: Path = Field(default_factory=packaged_inventory)
    collector_spool_dir: Path = Path(".local/spool/collector")
    collector_spool_max_bytes: int = Field(default=1 << 30, ge=64 << 10)
    collector_spool_segment_bytes: int = Field(default=16 << 20, ge=4096)
    collector_request_timeout_s: float = Field(default=0.5, gt=0, le=10)
    collector_connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    collector_backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    collector_backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    collector_gap_fill: int = Field(default=0, ge=0, le=124)
    collector_max_registers_per_read: int = Field(default=125, ge=1, le=MAX_REGISTERS_PER_READ)
    collector_max_in_flight: int = Field(default=20_000, ge=1, le=1_000_000)
    collector_linger_ms: int = Field(default=50, ge=0, le=5000)
    collector_compression: str | None = "lz4"
    # Replicas sharing the fleet: all sites, a static share by ordinal, or Kafka's group.
    collector_assignment: Literal["all", "static", "group"] = "all"
    collector_replica: int | None = Field(default=None, ge=0)  # static: default from HOSTNAME
    collector_replicas: int = Field(default=1, ge=1, le=1000)
    collector_assignment_buckets: int = Field(default=24, ge=1, le=1000)
    collector_assignment_replication: int = Field(default=1, ge=1, le=10)
    collector_group_id: str = "ess-collector"
    collector_group_session_timeout_s: float = Field(default=10.0, ge=1, le=300)

    @model_validator(mode="after")
    def _consistent(self) -> CollectorSettings:
        if self.collector_spool_segment_bytes * 4 > self.collector_spool_max_bytes:
            raise ValueError("ESS_COLLECTOR_SPOOL_SEGMENT_BYTES must be at most 1/4 of MAX_BYTES")
        if self.collector_backoff_initial_s > self.collector_backoff_max_s:
            raise ValueError("ESS_COLLECTOR_BACKOFF_INITIAL_S exceeds ESS_COLLECTOR_BACKOFF_MAX_S")
        return self
