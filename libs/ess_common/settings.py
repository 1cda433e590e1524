"""Settings shared by every service, read from `ESS_*` environment variables.

The local stack writes its connection settings to `.local/stack.env`; services,
the CLI and the tests read that file by default (`ESS_ENV_FILE` overrides the
path). Real environment variables always win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ess_common.clusters import Cluster

DEFAULT_ENV_FILE = Path(".local/stack.env")


class ConfigError(Exception):
    """Configuration that cannot be used; the message is meant for a person."""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESS_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    db_local_dsn: SecretStr = SecretStr("postgresql://ess@127.0.0.1:15433/ess")
    db_cloud_dsn: SecretStr = SecretStr("postgresql://ess@127.0.0.1:15434/ess")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:16379/0")
    topic_prefix: str = Field(default="ess", pattern=r"^[a-zA-Z0-9._-]{1,64}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535, description="0 = pick a free port")
    drain_timeout_s: float = Field(default=20.0, gt=0, le=600)
    # where batch commands (essctl dlq replay) push their counts; None: not pushed
    pushgateway_url: str | None = Field(default=None, pattern=r"^https?://")

    def dsn(self, cluster: Cluster) -> SecretStr:
        """The connection string of one cluster's database."""
        return self.db_local_dsn if cluster == "local" else self.db_cloud_dsn


def env_file() -> Path | None:
    """The env file to read, or None when there is none (e.g. in Kubernetes)."""
    explicit = os.environ.get("ESS_ENV_FILE")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"ESS_ENV_FILE={explicit} does not exist")
        return path
    return DEFAULT_ENV_FILE if DEFAULT_ENV_FILE.is_file() else None


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build `cls` from the environment and the env file; one readable error on failure."""
    try:
        return cls(_env_file=env_file())
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration for {cls.__name__}: {problems}") from None
