"""Gap-detector settings (`ESS_GAP_*` plus the common `ESS_*` ones)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from ess_archive_layout.settings import ArchiveStoreSettings
from ess_common.clusters import CLUSTERS, Cluster
from ess_common.model import TABLES, Table
from ess_gapdetector.windows import PERIOD_SECONDS, Period


class GapDetectorSettings(ArchiveStoreSettings):
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
    gap_sink_group_local: str | None = Field(
        default=None, description="the local sink's consumer group (default ess-sink-local)"
    )
    gap_sink_group_cloud: str | None = Field(
        default=None, description="the cloud sink's consumer group (default ess-sink-cloud)"
    )
    gap_final_after_s: float = Field(
        default=3600.0,
        gt=0,
        description="a window a sink group has not passed this long after its end is final",
    )
    gap_pending_recheck_s: float = Field(default=30.0, gt=0, le=3600)
    gap_registry_refresh_s: float = Field(default=30.0, gt=0, le=3600)
    gap_health_stale_s: float | None = Field(
        default=None, gt=0, description="unhealthy when no window evaluated for this long"
    )
    gap_state_interval_s: float = Field(default=60.0, gt=0, le=3600)
    gap_resume_from_state: bool = True
    gap_retry_initial_s: float = Field(default=1.0, gt=0, le=60)
    gap_retry_max_s: float = Field(default=30.0, gt=0, le=600)
    gap_tables: tuple[Table, ...] = Field(default=TABLES, min_length=1)
    gap_clusters: tuple[Cluster, ...] = Field(default=CLUSTERS, min_length=1)
    gap_heal: bool = True
    gap_archive_restore: bool = Field(
        default=True,
        description="restore from the archive (ESS_ARCHIVE_S3_*) what Kafka and the other"
        " cluster cannot give back",
    )
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

    def sink_group(self, cluster: Cluster) -> str:
        explicit = self.gap_sink_group_local if cluster == "local" else self.gap_sink_group_cloud
        return explicit or f"ess-sink-{cluster}"

    @property
    def health_stale_s(self) -> float:
        """No window evaluated for longer than this: unhealthy (default: the smallest
        period, the settle delay and ten minutes of waiting)."""
        if self.gap_health_stale_s is not None:
            return self.gap_health_stale_s
        return self.smallest_period_s + self.gap_settle_s + 600.0

    @property
    def rebuild_horizon_s(self) -> float:
        """How far back what reached Kafka is kept (and re-read at a start without state);
        a day window of a zone east of UTC ends up to 14 h after the UTC day."""
        zones = 14 * 3600 if "day" in self.gap_periods else 0
        return self.largest_period_s + zones + self.gap_settle_s + self.gap_lookback_s
