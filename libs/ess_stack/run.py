"""`make run`: the whole pipeline on the local stack, supervised, with a view of what flows.

Starts every service as its own process (logs in `.local/logs/<service>.log`)
and supervises them: one that exits unexpectedly is started again after the
shared `Backoff` (reset once it stayed up for a minute), and its restarts are
counted, shown, and served as `ess_run_service_restarts_total` on the
supervisor's own /metrics (port 18100, scraped by the stack's Prometheus). The
view is `ess_status`'s, the same as `essctl status`: redrawn in place on a
terminal, plain lines otherwise. On Ctrl-C (or SIGTERM) it sends SIGTERM to each, waits for them to
drain, and exits; the view's output is best effort, so a closed stdout (`make
run | head`, a killed `tee`) never keeps the services from being stopped.
Each service also gets SIGTERM from the kernel if the supervisor dies without
stopping it (PR_SET_PDEATHSIG), so no service outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from ess_common.backoff import Backoff
from ess_stack.config import StackConfig
from ess_stack.procs import ManagedProcess
from ess_status.watch import Watch, show_live


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    http_port: int
    env: dict[str, str] = field(default_factory=dict)
    metrics: bool = True  # serves /metrics on http_port (scraped by Prometheus and the view)


def pipeline_services() -> list[ServiceSpec]:
    return [
        # The simulator first: it listens on the ports of its own fleet file
        # (sites 15020.., HTTP control 15019); the collector polls it.
        ServiceSpec("simulator", "ess_simulator", 15019, metrics=False),
        ServiceSpec("collector", "ess_collector", 18105),
        ServiceSpec("sink-local", "ess_sink", 18101, {"ESS_SINK_CLUSTER": "local"}),
        ServiceSpec("sink-cloud", "ess_sink", 18102, {"ESS_SINK_CLUSTER": "cloud"}),
        ServiceSpec("cache", "ess_cache", 18103),
        ServiceSpec("gapdetector", "ess_gapdetector", 18104),
        ServiceSpec("archive", "ess_archive", 18106),  # Parquet in the stack's MinIO
    ]


def local_targets(cfg: StackConfig, specs: list[ServiceSpec] | None = None) -> dict[str, str]:
    """What the status view reads: each service's /metrics, and the supervisor's ("run")."""
    targets = {
        s.name: f"http://{cfg.host}:{s.http_port}/metrics"
        for s in (pipeline_services() if specs is None else specs)
        if s.metrics
    }
    targets["run"] = f"http://{cfg.host}:{cfg.run_metrics_port}/metrics"
    return targets


STABLE_S = 60.0  # up this long: the next exit starts the backoff from the beginning
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def say(text: str) -> None:
    """Print for a person; a closed or broken stdout is ignored (the work goes on)."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


@dataclass
class _Supervision:
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=1.0, cap_s=30.0))
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None  # when it died: the time of its next start


class SupervisorMetrics:
    """What only the supervisor knows, on its own /metrics (`cfg.run_metrics_port`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.up = Gauge(
            "ess_run_service_up",
            "1 while the service's process runs under make run",
            ("service",),
            registry=self.registry,
        )
        self.restarts = Counter(
            "ess_run_service_restarts_total",
            "Times make run started the service again after it exited unexpectedly",
            ("service",),
            registry=self.registry,
        )

    def serve(self, host: str, port: int) -> str | None:
        """Start serving; None, or why not (the pipeline runs without it)."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            return f"supervisor metrics not served on {host}:{port}: {exc.strerror}"
        return None


class Pipeline:
    def __init__(self, cfg: StackConfig, specs: list[ServiceSpec]) -> None:
        self.cfg = cfg
        self.specs = specs
        self.supervision = {s.name: _Supervision() for s in specs}
        self.metrics = SupervisorMetrics()
        for s in specs:
            self.metrics.restarts.labels(s.name)
        self.procs = {
            s.name: ManagedProcess(
                s.name,
                cfg.state / "pids" / f"{s.name}.pid",
                cfg.state / "logs" / f"{s.name}.log",
                f"-m {s.module}",
            )
            for s in specs
        }

    def start(self) -> None:
        for spec in self.specs:
            if self.procs[spec.name].pid() is None:
                self._start(spec)

    def _start(self, spec: ServiceSpec) -> None:
        env = {
            **os.environ,
            "ESS_ENV_FILE": str(self.cfg.env_file),
            "ESS_HTTP_PORT": str(spec.http_port),
            **spec.env,
        }
        self.procs[spec.name].start(
            [sys.executable, "-m", spec.module], env=env, preexec_fn=_die_with_parent
        )
        sup = self.supervision[spec.name]
        sup.started_at, sup.restart_at = time.monotonic(), None

    def supervise(self) -> list[str]:
        """Restart services that exited (after their backoff); names restarted now."""
        now, restarted = time.monotonic(), []
        for spec in self.specs:
            sup = self.supervision[spec.name]
            alive = self.procs[spec.name].pid() is not None
            self.metrics.up.labels(spec.name).set(int(alive))
            if alive:
                if now - sup.started_at > STABLE_S:
                    sup.backoff.reset()
                continue
            if sup.restart_at is None:
                sup.restart_at = now + sup.backoff.next_delay()
            elif now >= sup.restart_at:
                self._start(spec)
                sup.restarts += 1
                self.metrics.restarts.labels(spec.name).inc()
                restarted.append(spec.name)
        return restarted

    def stop(self) -> None:
        for spec in reversed(self.specs):
            self.procs[spec.name].stop(signal.SIGTERM, timeout_s=30)


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


def run_pipeline(
    cfg: StackConfig, interval_s: float = 5.0, specs: list[ServiceSpec] | None = None
) -> int:
    pipeline = Pipeline(cfg, pipeline_services() if specs is None else specs)
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a closed stdout is an EPIPE, handled in say()
    try:
        pipeline.start()
        say(f"pipeline running; logs in {cfg.state / 'logs'}; Ctrl-C stops it")
        problem = pipeline.metrics.serve(cfg.host, cfg.run_metrics_port)
        if problem:
            say(problem)
        prometheus = f"http://{cfg.host}:{cfg.prometheus_port}"
        watch = Watch(local_targets(cfg, pipeline.specs), {"prometheus": prometheus})
        show_live(
            watch,
            interval_s,
            tty=_is_terminal(),
            emit=say,
            tick=lambda: [
                f"restarted {name} (exited unexpectedly)" for name in pipeline.supervise()
            ],
            stopping=lambda: stopping,
        )
    finally:
        # Stop first, talk after: nothing the view does may leave a service running.
        with contextlib.suppress(KeyboardInterrupt):
            pipeline.stop()
        say("services stopped (the local stack keeps running: `make down` stops it)")
    return 0
