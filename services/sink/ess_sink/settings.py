"""Sink settings: one program, one instance per cluster (`ESS_SINK_CLUSTER`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ess_common.model import TABLES, Table
from ess_common.settings import CommonSettings

Cluster = Literal["local", "cloud"]


class SinkSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    sink_cluster: Cluster = "local"
    sink_group_id: str | None = Field(default=None, description="default: ess-sink-<cluster>")
    sink_tables: tuple[Table, ...] = TABLES
    sink_batch_max_rows: int = Field(default=5000, ge=1, le=100_000)
    sink_batch_max_wait_s: float = Field(default=0.5, gt=0, le=60)
    sink_migrate_on_start: bool = True
    sink_db_connect_timeout_s: float = Field(default=5.0, gt=0)
    sink_db_command_timeout_s: float = Field(default=60.0, gt=0)

    @property
    def group_id(self) -> str:
        return self.sink_group_id or f"ess-sink-{self.sink_cluster}"

    @property
    def dsn(self) -> SecretStr:
        return self.db_local_dsn if self.sink_cluster == "local" else self.db_cloud_dsn
