"""Sink settings: one program, one instance per cluster (`ESS_SINK_CLUSTER`).

`SinkSettings` (`ESS_SINK_*`) configures the write path, `ReplaySettings`
(`ESS_SINK_REPLAY_*`) how the same sink serves replay requests.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ess_common.clusters import Cluster
from ess_common.model import TABLES, Table
from ess_tables.settings import SchemaSettings, SlotBoundsSettings


class SinkSettings(SchemaSettings, SlotBoundsSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    sink_cluster: Cluster = "local"
    sink_group_id: str | None = Field(default=None, description="default: ess-sink-<cluster>")
    sink_group_instance_id: str | None = Field(
        default=None,
        description="static group membership (e.g. the pod name): a restarted member takes"
        " its partitions back at once instead of waiting for its old session to expire",
    )
    sink_session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    sink_tables: tuple[Table, ...] = TABLES
    sink_batch_max_rows: int = Field(default=20_000, ge=1, le=100_000)
    sink_batch_max_wait_s: float = Field(default=0.5, gt=0, le=60)
    sink_migrate_on_start: bool = True
    sink_db_connections: int = Field(
        default=2, ge=1, le=16, description="lanes: each owns partition % n and a connection"
    )
    sink_db_connect_timeout_s: float = Field(default=5.0, gt=0)
    sink_db_command_timeout_s: float = Field(default=60.0, gt=0)
    sink_retry_initial_s: float = Field(default=0.5, gt=0, le=60)
    sink_retry_max_s: float = Field(default=15.0, gt=0, le=600)
    sink_revoke_wait_s: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="on a rebalance, how long the batch in flight may take to commit",
    )
    sink_stall_s: float = Field(default=120.0, gt=0, description="/healthz fails after this")
    sink_lag_interval_s: float = Field(default=5.0, gt=0, le=300)

    @property
    def group_id(self) -> str:
        return self.sink_group_id or f"ess-sink-{self.sink_cluster}"

    @property
    def sink_dsn(self) -> SecretStr:
        return self.dsn(self.sink_cluster)


class ReplaySettings(BaseSettings):
    """`ESS_SINK_REPLAY_*`: how a sink serves replay requests."""

    model_config = SettingsConfigDict(env_prefix="ESS_SINK_REPLAY_", frozen=True, extra="ignore")

    enabled: bool = True
    group_id: str | None = Field(default=None, description="default: <sink group>-replay")
    lateness_s: float = Field(default=120.0, ge=0, le=86400)
    batch_records: int = Field(default=5000, ge=1, le=100_000)
    status_interval_s: float = Field(default=2.0, gt=0)
    idle_timeout_s: float = Field(default=30.0, gt=0)
    max_request_age_s: float = Field(
        default=86400.0, gt=0, description="older requests are skipped (e.g. a new group's backlog)"
    )
    retry_initial_s: float = Field(
        default=5.0, gt=0, le=600, description="first wait after Kafka or a stalled replay failed"
    )
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)
    attempts: int = Field(
        default=3, ge=1, le=100, description="tries of a request that stalls before it fails"
    )
    unhealthy_after: int = Field(
        default=3, ge=1, le=1000, description="worker failures in a row that fail /healthz"
    )
