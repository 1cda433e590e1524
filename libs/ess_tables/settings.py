"""What migrations and the write path need besides the DSNs, read from `ESS_*`.

`SchemaSettings`: the sink (it migrates on start) and `essctl db migrate`.
`SlotBoundsSettings`: the slots every writer of telemetry accepts (the sink,
its replays, `essctl replay` and `essctl dlq replay`).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ess_common.settings import CommonSettings
from ess_tables.batch import SlotBounds
from ess_tables.schema import SchemaPolicies

THIRTY_DAYS_S = 30 * 24 * 3600


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


class SlotBoundsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    sink_max_future_s: float = Field(default=300.0, ge=0, description="slot ahead of now -> DLQ")
    sink_max_age_s: float = Field(default=THIRTY_DAYS_S, gt=0, description="older slot -> DLQ")

    @property
    def bounds(self) -> SlotBounds:
        return SlotBounds(
            max_future=timedelta(seconds=self.sink_max_future_s),
            max_age=timedelta(seconds=self.sink_max_age_s),
        )
