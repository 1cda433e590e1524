"""The archive's object store in the local stack: MinIO, built from its Go module, on loopback.

MinIO publishes its server as a Go module, so the stack builds it with
`go install` (about 2.5 minutes on 2 cores the first time) into the cache
(`~/.cache/ess-stack/minio-<version>/minio`, built aside and renamed when
complete, like the other provisioned servers); later starts take a second.
The bucket the archive writes is created on every start (idempotent).
Credentials are settings (`ESS_STACK_MINIO_ROOT_USER` / `_PASSWORD`), written
only to `.local/stack.env` for the local services, never logged.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ess_archive_layout.bucket import ensure_bucket
from ess_stack.components import Status, _claim_port, await_ready
from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.procs import ManagedProcess
from ess_stack.provision import _run

MINIO_MODULE = "github.com/minio/minio"
# The module's newest pseudo-version on the day it was added (MinIO tags no Go releases).
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


class MinioConfig(BaseSettings):
    """`ESS_STACK_MINIO_*`: the local S3-compatible server."""

    model_config = SettingsConfigDict(env_prefix="ESS_STACK_MINIO_", frozen=True, extra="ignore")

    port: int = Field(default=19000, ge=1024, le=65535)
    console_port: int = Field(default=19001, ge=1024, le=65535)
    bucket: str = Field(default="ess-archive", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    region: str = "us-east-1"
    root_user: str = Field(default="ess-archive", min_length=3)
    root_password: SecretStr = Field(default=SecretStr("ess-archive-local"), min_length=8)
    version: str = MINIO_VERSION


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if found is None:
        raise StackError("minio", "the Go toolchain (go 1.24+) is needed to build MinIO's server")
    return found


def ensure_minio(cfg: StackConfig, version: str = MINIO_VERSION) -> Path:
    """The `minio` binary, built once with `go install` into the cache."""
    home = cfg.cache_dir / f"minio-{version}"
    binary = home / "minio"
    if binary.is_file():
        return binary
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = {**os.environ, "GOBIN": str(partial), "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
    log_file = cfg.state / "logs" / "provision.log"
    _run("minio", [_go(), "install", f"{MINIO_MODULE}@{version}"], log_file, env)
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)
    return binary


class Minio:
    name = "minio"

    def __init__(self, cfg: StackConfig, minio: MinioConfig | None = None) -> None:
        self.cfg = cfg
        self.minio = minio or MinioConfig()
        self.data = cfg.state / "minio"
        self.binary: Path | None = None
        self.proc = ManagedProcess(
            self.name,
            cfg.state / "pids" / "minio.pid",
            cfg.state / "logs" / "minio.log",
            str(self.data),
        )

    @property
    def endpoint(self) -> str:
        return f"http://{self.cfg.host}:{self.minio.port}"

    def provision(self) -> None:
        self.binary = ensure_minio(self.cfg, self.minio.version)

    def start(self) -> None:
        m = self.minio
        if not _claim_port(self.name, self.proc, self.cfg.host, m.port):
            binary = self.binary or ensure_minio(self.cfg, m.version)
            self.data.mkdir(parents=True, exist_ok=True)
            env = {
                **os.environ,
                "MINIO_ROOT_USER": m.root_user,
                "MINIO_ROOT_PASSWORD": m.root_password.get_secret_value(),
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
            }
            self.proc.start(
                [
                    str(binary),
                    "server",
                    str(self.data),
                    "--address",
                    f"{self.cfg.host}:{m.port}",
                    "--console-address",
                    f"{self.cfg.host}:{m.console_port}",
                    "--quiet",
                ],
                env=env,
            )
            await_ready(self.name, self.proc, self.cfg.host, m.port, self.cfg.ready_timeout_s)
        ensure_bucket(
            self.endpoint,
            m.bucket,
            region=m.region,
            access_key=m.root_user,
            secret_key=m.root_password,
            timeout_s=self.cfg.ready_timeout_s,
        )

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGTERM, timeout_s=30)

    def remove_data(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)

    def env_lines(self) -> list[str]:
        """The archive's settings for services, CLI and tests (`.local/stack.env`)."""
        m = self.minio
        return [
            f"ESS_ARCHIVE_S3_ENDPOINT={self.endpoint}",
            f"ESS_ARCHIVE_S3_BUCKET={m.bucket}",
            f"ESS_ARCHIVE_S3_REGION={m.region}",
            f"ESS_ARCHIVE_S3_ACCESS_KEY_ID={m.root_user}",
            f"ESS_ARCHIVE_S3_SECRET_ACCESS_KEY={m.root_password.get_secret_value()}",
        ]

    def status(self) -> Status:
        pid = self.proc.pid()
        return Status(self.name, pid is not None, pid, self.endpoint, self.proc.log_file)
