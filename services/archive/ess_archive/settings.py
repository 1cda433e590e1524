"""Archive settings: `ESS_ARCHIVE_*`, the common `ESS_*` and the bucket's `ESS_ARCHIVE_S3_*`."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from ess_archive_layout.settings import ArchiveStoreSettings
from ess_common.model import TABLES, Table
from ess_tables.settings import SlotBoundsSettings


class ArchiveSettings(ArchiveStoreSettings, SlotBoundsSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    archive_group_id: str = Field(default="ess-archive", min_length=1, max_length=200)
    archive_tables: tuple[Table, ...] = Field(default=TABLES, min_length=1)
    archive_group_instance_id: str | None = Field(
        default=None, description="static membership (e.g. the pod name), as for the sinks"
    )
    archive_session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    archive_flush_rows: int = Field(
        default=200_000, ge=1, le=5_000_000, description="staged readings that force a flush"
    )
    archive_flush_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a flush (segments, manifests, offsets) at least this often",
    )
    archive_part_rows: int = Field(
        default=4_000_000, ge=1000, description="readings per rolled-up part (tens of MB)"
    )
    archive_rollup_after_s: float = Field(
        default=600.0, gt=0, description="roll up a day's segments once the oldest is this old"
    )
    archive_rollup_check_s: float = Field(default=60.0, gt=0, le=3600)
    archive_rescan_days: int = Field(
        default=3,
        ge=1,
        le=400,
        description="days whose manifests are checked for roll-ups on start",
    )
    archive_orphan_age_s: float = Field(
        default=3600.0, gt=0, description="unlisted staging segments older than this are deleted"
    )
    archive_row_group_rows: int = Field(default=256 * 1024, ge=1024)
    archive_retry_initial_s: float = Field(default=1.0, gt=0, le=60)
    archive_retry_max_s: float = Field(default=15.0, gt=0, le=600)
    archive_revoke_wait_s: float = Field(default=10.0, ge=0, le=300)
    archive_stall_s: float = Field(
        default=300.0,
        gt=0,
        description="/healthz fails when messages wait and nothing was committed",
    )

    @model_validator(mode="after")
    def _needs_a_bucket(self) -> ArchiveSettings:
        if not self.archive_s3_bucket:
            raise ValueError("ESS_ARCHIVE_S3_BUCKET must name the archive's bucket")
        if len(set(self.archive_tables)) != len(self.archive_tables):
            raise ValueError("archive_tables lists a table twice")
        return self
