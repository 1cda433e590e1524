"""Cache settings (`ESS_CACHE_*` on top of the common `ESS_*` ones and the key prefix).

The slot bounds are the sinks' own (`ESS_SINK_MAX_FUTURE_S`, `ESS_SINK_MAX_AGE_S`):
the cache counts exactly the slots the clusters keep.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from ess_cache_layout.measures import DAY_S
from ess_cache_layout.settings import CacheReadSettings
from ess_common.clusters import Cluster
from ess_common.model import TABLES, Table
from ess_tables.settings import SlotBoundsSettings

HOUR_S = 3600


class CacheSettings(CacheReadSettings, SlotBoundsSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    cache_group_id: str = "ess-cache"
    cache_tables: tuple[Table, ...] = TABLES
    # Deep batches are cheap batches: a bucket is read and written once per batch, so a
    # device with 20 readings in one batch costs Redis a twentieth per reading.
    cache_batch_max_readings: int = Field(default=20_000, ge=1, le=100_000)
    cache_batch_max_wait_s: float = Field(default=0.5, gt=0, le=60)
    # Readings per script call: bounds how long one call holds Redis (~10 ms per 1,000).
    cache_script_readings: int = Field(default=4000, ge=1, le=20_000)
    # How long a bucket lives after it closes, per resolution.
    cache_ttl_1m_s: int = Field(default=3 * HOUR_S, ge=60)
    cache_ttl_15m_s: int = Field(default=DAY_S, ge=60)
    cache_ttl_1h_s: int = Field(default=7 * DAY_S, ge=60)
    cache_ttl_1d_s: int = Field(default=35 * DAY_S, ge=60)
    # Slots the cache accepts (and rebuilds): the open UTC day and `window_days - 1`
    # days before it; a day stays open `late_s` past midnight for late readings.
    cache_window_days: int = Field(default=1, ge=1, le=7)
    cache_late_s: int = Field(default=HOUR_S, ge=0, le=DAY_S)
    cache_latest_ttl_s: int = Field(default=7 * DAY_S, ge=60)
    cache_rebuild_cluster: Cluster = "local"
    # After a rebuild each partition is re-read from the offset this group (the sinks of
    # the rebuild cluster) had committed when the rebuild started; default ess-sink-<cluster>.
    cache_rebuild_sink_group: str | None = None
    cache_rebuild_lock_s: int = Field(default=900, ge=10)
    cache_rules_file: Path | None = None
    cache_anomaly_max_entries: int = Field(default=1000, ge=10)
    cache_anomaly_max_age_s: int = Field(default=DAY_S, ge=60)
    cache_summary_interval_s: float = Field(default=5.0, gt=0, le=3600)
    cache_redis_timeout_s: float = Field(default=5.0, gt=0)
    cache_retry_max_s: float = Field(default=10.0, gt=0)
    cache_db_command_timeout_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _ttls_fit(self) -> CacheSettings:
        ttls = [self.cache_ttl_1m_s, self.cache_ttl_15m_s, self.cache_ttl_1h_s, self.cache_ttl_1d_s]
        if ttls != sorted(ttls):
            raise ValueError(
                "bucket TTLs must not shrink with coarser resolutions (1m <= 15m <= 1h <= 1d)"
            )
        return self

    @property
    def ttl_by_resolution(self) -> dict[str, int]:
        return {
            "1m": self.cache_ttl_1m_s,
            "15m": self.cache_ttl_15m_s,
            "1h": self.cache_ttl_1h_s,
            "1d": self.cache_ttl_1d_s,
        }

    @property
    def rebuild_sink_group(self) -> str:
        return self.cache_rebuild_sink_group or f"ess-sink-{self.cache_rebuild_cluster}"

    @property
    def rebuild_dsn(self) -> SecretStr:
        return self.dsn(self.cache_rebuild_cluster)
