"""`make run`: the whole pipeline on the local stack, supervised, with a view of what flows.

Starts every service as its own process (logs in `.local/logs/<service>.log`)
and supervises them: one that exits unexpectedly is started again after the
shared `Backoff` (reset once it stayed up for a minute), and its restarts are
counted and shown. Prints one status block every few seconds from their
`/metrics`. On Ctrl-C (or SIGTERM) it sends SIGTERM to each, waits for them to
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
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from ess_common.backoff import Backoff
from ess_stack.config import StackConfig
from ess_stack.procs import ManagedProcess


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    http_port: int
    env: dict[str, str] = field(default_factory=dict)
    # (label shown, metric sample name) summed over labels for the live view
    shows: tuple[tuple[str, str], ...] = ()


def pipeline_services() -> list[ServiceSpec]:
    sink_shows = (
        ("rows", "ess_sink_rows_written_total"),
        ("dup", "ess_sink_duplicates_skipped_total"),
        ("dlq", "ess_sink_dlq_messages_total"),
        ("replays", "ess_sink_replay_requests_total"),
    )
    gap_shows = (
        ("windows", "ess_gapdetector_windows_evaluated_total"),
        ("replay-req", "ess_gapdetector_replay_requests_total"),
        ("healed", "ess_gapdetector_gaps_closed_total"),
        ("open", "ess_gapdetector_gaps_unclosed_total"),
    )
    cache_shows = (
        ("applied", "ess_cache_readings_applied_total"),
        ("dup", "ess_cache_duplicates_ignored_total"),
        ("anomalies", "ess_cache_anomalies_raised_total"),
    )
    collector_shows = (
        ("read", "ess_collector_readings_total"),
        ("published", "ess_collector_readings_published_total"),
        ("spool", "ess_collector_spool_depth"),
        ("dropped", "ess_collector_spool_dropped_total"),
    )
    return [
        # The simulator first: it listens on the ports of its own fleet file
        # (sites 15020.., HTTP control 15019); the collector polls it.
        ServiceSpec("simulator", "ess_simulator", 15019),
        ServiceSpec("collector", "ess_collector", 18105, {}, collector_shows),
        ServiceSpec("sink-local", "ess_sink", 18101, {"ESS_SINK_CLUSTER": "local"}, sink_shows),
        ServiceSpec("sink-cloud", "ess_sink", 18102, {"ESS_SINK_CLUSTER": "cloud"}, sink_shows),
        ServiceSpec("cache", "ess_cache", 18103, {}, cache_shows),
        ServiceSpec("gapdetector", "ess_gapdetector", 18104, {}, gap_shows),
    ]


def _scrape(port: int, wanted: tuple[tuple[str, str], ...]) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    totals = {label: 0.0 for label, _ in wanted}
    names = {name: label for label, name in wanted}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                totals[names[sample.name]] += sample.value
    return totals


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


class Pipeline:
    def __init__(self, cfg: StackConfig, specs: list[ServiceSpec]) -> None:
        self.cfg = cfg
        self.specs = specs
        self.supervision = {s.name: _Supervision() for s in specs}
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
            if self.procs[spec.name].pid() is not None:
                if now - sup.started_at > STABLE_S:
                    sup.backoff.reset()
                continue
            if sup.restart_at is None:
                sup.restart_at = now + sup.backoff.next_delay()
            elif now >= sup.restart_at:
                self._start(spec)
                sup.restarts += 1
                restarted.append(spec.name)
        return restarted

    def stop(self) -> None:
        for spec in reversed(self.specs):
            self.procs[spec.name].stop(signal.SIGTERM, timeout_s=30)

    def status_block(self) -> str:
        lines = [time.strftime("%H:%M:%S") + "  service       state    restarts  flow"]
        for spec in self.specs:
            alive = self.procs[spec.name].pid() is not None
            totals = _scrape(spec.http_port, spec.shows) if alive else None
            flow = "  ".join(f"{k}={v:,.0f}" for k, v in totals.items()) if totals else "-"
            state = "up" if alive else "DOWN"
            restarts = self.supervision[spec.name].restarts
            lines.append(f"          {spec.name:<13} {state:<8} {restarts:>8}  {flow}")
        return "\n".join(lines)


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
        say(f"prometheus: http://{cfg.host}:{cfg.prometheus_port}  (docs/operations.md)")
        while not stopping:
            say(pipeline.status_block())
            deadline = time.monotonic() + interval_s
            while not stopping and time.monotonic() < deadline:
                for name in pipeline.supervise():
                    say(f"restarted {name} (exited unexpectedly)")
                time.sleep(0.2)
    finally:
        # Stop first, talk after: nothing the view does may leave a service running.
        with contextlib.suppress(KeyboardInterrupt):
            pipeline.stop()
        say("services stopped (the local stack keeps running: `make down` stops it)")
    return 0
