"""What migrations need besides the DSNs, read like every setting from `ESS_*`.

Shared by the sink (it migrates on start) and `essctl db migrate`.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ess_common.settings import CommonSettings
from ess_tables.schema import SchemaPolicies


class SchemaSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    db_compress_after_s: float = Field(
        default=7 * 24 * 3600, gt=0, description="compression policy (Timescale license only)"
    )
    db_retention_s: float | None = Field(
        default=None, gt=0, description="retention policy (Timescale license only); None = keep"
    )

    @property
    def policies(self) -> SchemaPolicies:
        return SchemaPolicies(
            compress_after=timedelta(seconds=self.db_compress_after_s),
            retention=timedelta(seconds=self.db_retention_s) if self.db_retention_s else None,
        )
