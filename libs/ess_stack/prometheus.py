"""Prometheus of the local stack (Debian's `prometheus` package) and its Pushgateway, on loopback.

Its scrape configuration and alert rules live in the repo (`monitoring/`), so
the same files drive the local stack, docker-compose and the tests. The
binary comes from apt like `redis-server`; `promtool` ships with it. The
Pushgateway (Debian's `prometheus-pushgateway`) holds what batch jobs such as
`essctl dlq replay` count, for Prometheus to scrape; it persists to a file, so
a restart keeps the totals.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from ess_stack.components import Status, _claim_port, await_ready
from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.procs import ManagedProcess
from ess_stack.provision import apt_install

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
LOCAL_CONFIG = MONITORING / "prometheus" / "local.yml"
RULES = MONITORING / "rules" / "ess.rules.yml"


def ensure_prometheus(cfg: StackConfig) -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, installed from Debian's package when missing."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        # Recommends pull in node-exporter and friends: not needed here.
        apt_install(
            "prometheus",
            ["--no-install-recommends", "prometheus"],
            cfg.state / "logs" / "provision.log",
        )
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        raise StackError("prometheus", "prometheus/promtool not found after install")
    return prometheus, promtool


class Prometheus:
    name = "prometheus"

    def __init__(self, cfg: StackConfig, config_file: Path = LOCAL_CONFIG) -> None:
        self.cfg = cfg
        self.config_file = config_file
        self.data = cfg.state / "prometheus"
        self.binary = ""
        self.proc = ManagedProcess(
            self.name,
            cfg.state / "pids" / "prometheus.pid",
            cfg.state / "logs" / "prometheus.log",
            f"--storage.tsdb.path={self.data}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.prometheus_port}"

    def provision(self) -> None:
        self.binary, _ = ensure_prometheus(self.cfg)

    def start(self) -> None:
        c = self.cfg
        if _claim_port(self.name, self.proc, c.host, c.prometheus_port):
            return
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc.start(
            [
                self.binary or "prometheus",
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.data}",
                f"--storage.tsdb.retention.time={c.prometheus_retention}",
                f"--web.listen-address={c.host}:{c.prometheus_port}",
                "--web.enable-lifecycle",  # POST /-/reload after editing the config
                "--log.level=warn",
            ],
            cwd=self.config_file.parent,  # rule_files are relative to the config
        )
        await_ready(self.name, self.proc, c.host, c.prometheus_port, c.ready_timeout_s)

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGTERM, timeout_s=30)

    def status(self) -> Status:
        return Status(
            self.name, self.proc.pid() is not None, self.proc.pid(), self.url, self.proc.log_file
        )


class Pushgateway:
    name = "pushgateway"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.binary = ""
        self.store = cfg.state / "pushgateway.metrics"
        self.proc = ManagedProcess(
            self.name,
            cfg.state / "pids" / "pushgateway.pid",
            cfg.state / "logs" / "pushgateway.log",
            f"--persistence.file={self.store}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.pushgateway_port}"

    def provision(self) -> None:
        if shutil.which("prometheus-pushgateway") is None:
            apt_install(
                "pushgateway",
                ["--no-install-recommends", "prometheus-pushgateway"],
                self.cfg.state / "logs" / "provision.log",
            )
        found = shutil.which("prometheus-pushgateway")
        if found is None:
            raise StackError(self.name, "prometheus-pushgateway not found after install")
        self.binary = found

    def start(self) -> None:
        c = self.cfg
        if _claim_port(self.name, self.proc, c.host, c.pushgateway_port):
            return
        self.proc.start(
            [
                self.binary or "prometheus-pushgateway",
                f"--web.listen-address={c.host}:{c.pushgateway_port}",
                f"--persistence.file={self.store}",
                "--persistence.interval=5s",
                "--log.level=warn",
            ]
        )
        await_ready(self.name, self.proc, c.host, c.pushgateway_port, c.ready_timeout_s)

    def stop(self) -> bool:
        return self.proc.stop(signal.SIGTERM, timeout_s=30)

    def status(self) -> Status:
        return Status(
            self.name, self.proc.pid() is not None, self.proc.pid(), self.url, self.proc.log_file
        )
