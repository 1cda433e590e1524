"""Settings of the local stack (`ESS_STACK_*`), and the env file it writes for everyone else."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


class StackConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_STACK_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    kafka_port: int = Field(default=19092, ge=1024, le=65535)
    kafka_controller_port: int = Field(default=19093, ge=1024, le=65535)
    db_local_port: int = Field(default=15433, ge=1024, le=65535)
    db_cloud_port: int = Field(default=15434, ge=1024, le=65535)
    redis_port: int = Field(default=16379, ge=1024, le=65535)
    prometheus_port: int = Field(default=19090, ge=1024, le=65535)
    prometheus_retention: str = "2d"
    pushgateway_port: int = Field(default=19091, ge=1024, le=65535)  # batch jobs' metrics
    run_metrics_port: int = Field(default=18100, ge=1024, le=65535)  # make run's supervisor
    db_user: str = "ess"
    db_name: str = "ess"
    topic_partitions: int = Field(default=6, ge=1, le=256)
    topic_retention_ms: int = Field(default=SEVEN_DAYS_MS, ge=60_000)
    kafka_version: str = "4.1.1"
    kafka_heap: str = "768m"
    debian_suite: str = "trixie"
    debian_mirror: str = "http://deb.debian.org/debian"
    cache_dir: Path = Path.home() / ".cache" / "ess-stack"
    state_dir: Path = Path(".local")
    ready_timeout_s: float = Field(default=90.0, gt=0)

    @property
    def state(self) -> Path:
        return self.state_dir.resolve()

    @property
    def instance(self) -> str:
        """Short id of this checkout, so two checkouts never share data directories."""
        return hashlib.sha256(str(self.state).encode()).hexdigest()[:12]

    @property
    def env_file(self) -> Path:
        return self.state / "stack.env"

    def dsn(self, port: int, database: str | None = None) -> str:
        return f"postgresql://{self.db_user}@{self.host}:{port}/{database or self.db_name}"

    def env_lines(self) -> list[str]:
        return [
            f"ESS_KAFKA_BOOTSTRAP={self.host}:{self.kafka_port}",
            f"ESS_DB_LOCAL_DSN={self.dsn(self.db_local_port)}",
            f"ESS_DB_CLOUD_DSN={self.dsn(self.db_cloud_port)}",
            f"ESS_REDIS_URL=redis://{self.host}:{self.redis_port}/0",
            f"ESS_PUSHGATEWAY_URL=http://{self.host}:{self.pushgateway_port}",
        ]
