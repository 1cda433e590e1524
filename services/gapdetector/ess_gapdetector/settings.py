"""Gap-detector settings (`ESS_GAP_*` plus the common `ESS_*` ones)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from ess_common.clusters import CLUSTERS, Cluster
from ess_common.model import TABLES, Table
from ess_common.settings import CommonSettings
from ess_gapdetector.windows import PERIOD_SECONDS, Period


class GapDetectorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    gap_group_id: str = Field(default="ess-gapdetector", min_length=1, max_length=200)
    gap_periods: tuple[Period, ...] = Field(default=("minute", "hour", "day"), min_length=1)
    gap_settle_s: float = Field(default=120.0, ge=0, le=86400)
    gap_lookback_s: float = Field(
        default=3600.0,
        ge=0,
        le=400 * 86400,
        description="evaluate windows that ended this long before start",
    )
    gap_device_silent_s: int = Field(
        default=86400, ge=60, description="a device silent longer is no longer expected"
    )
    gap_tables: tuple[Table, ...] = Field(default=TABLES, min_length=1)
    gap_clusters: tuple[Cluster, ...] = Field(default=CLUSTERS, min_length=1)
    gap_heal: bool = True
    gap_coalesce_s: int = Field(default=60, ge=0, description="merge sink gaps this close")
    gap_replay_timeout_s: float = Field(default=600.0, gt=0)
    gap_sync_chunk_rows: int = Field(default=20_000, ge=100, le=1_000_000)
    gap_store_daily: bool = True
    gap_db_command_timeout_s: float = Field(default=600.0, gt=0)
    gap_poll_records: int = Field(default=20_000, ge=100)

    @model_validator(mode="after")
    def _distinct(self) -> GapDetectorSettings:
        for name in ("gap_periods", "gap_tables", "gap_clusters"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice")
        return self

    @property
    def largest_period_s(self) -> int:
        return max(PERIOD_SECONDS[p] for p in self.gap_periods)

    @property
    def smallest_period_s(self) -> int:
        return min(PERIOD_SECONDS[p] for p in self.gap_periods)

    @property
    def rebuild_horizon_s(self) -> float:
        """How far back Kafka is re-read at start, to know the windows still to evaluate."""
        return self.largest_period_s + self.gap_settle_s + self.gap_lookback_s
