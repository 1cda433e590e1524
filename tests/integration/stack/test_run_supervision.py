"""`make run`'s supervisor: a service that exits is restarted (with the shared
backoff) and counted; Ctrl-C stops every service even when stdout is a closed
pipe; and a supervisor killed outright takes its services with it."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ess_stack.config import StackConfig
from ess_stack.run import Pipeline, ServiceSpec
from helpers.disposable import free_port

TESTS = Path(__file__).resolve().parents[2]

DRIVER = """
import sys
from pathlib import Path
from ess_stack.config import StackConfig
from ess_stack.run import ServiceSpec, run_pipeline
specs = [ServiceSpec(f"svc{i}", "helpers.sleeper", 1) for i in range(3)]
sys.exit(run_pipeline(StackConfig(state_dir=Path(sys.argv[1])), 0.2, specs))
"""


@pytest.fixture(autouse=True)
def _importable_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))


def _pids(state: Path) -> list[int]:
    return [int(p.read_text()) for p in (state / "pids").glob("svc*.pid")]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(what: str, check: object, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_service_that_exits_is_restarted_and_counted(tmp_path: Path) -> None:
    spec = ServiceSpec("svc", "helpers.sleeper", 1, {"SLEEPER_EXIT_AFTER_S": "0.3"})
    pipeline = Pipeline(StackConfig(state_dir=tmp_path), [spec])
    pipeline.start()
    try:
        deadline = time.monotonic() + 10
        while pipeline.supervision["svc"].restarts < 2 and time.monotonic() < deadline:
            pipeline.supervise()
            time.sleep(0.05)
        assert pipeline.supervision["svc"].restarts >= 2
        assert pipeline.supervision["svc"].backoff.failures >= 2  # the shared backoff spaced them
        served = pipeline.metrics.registry.get_sample_value(
            "ess_run_service_restarts_total", {"service": "svc"}
        )
        assert served == pipeline.supervision["svc"].restarts
    finally:
        pipeline.stop()


def _driver(state: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(state)], stdout=subprocess.PIPE)
    _wait_for("services started", lambda: len(_pids(state)) == 3 and all(map(_alive, _pids(state))))
    return proc


def test_ctrl_c_stops_every_service_even_with_a_closed_stdout(tmp_path: Path) -> None:
    proc = _driver(tmp_path)
    pids = _pids(tmp_path)
    assert proc.stdout is not None
    proc.stdout.close()  # `make run | tee` with tee gone: every later write is EPIPE
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert [p for p in pids if _alive(p)] == []


def test_no_service_outlives_a_killed_supervisor(tmp_path: Path) -> None:
    proc = _driver(tmp_path)
    pids = _pids(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _wait_for("services gone", lambda: not any(map(_alive, pids)))


def _driver_in_a_terminal(state: Path, port: int) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "ESS_STACK_RUN_METRICS_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(state)], stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    return proc, master


def _read_for(fd: int, seconds: float) -> bytes:
    out, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return out


def test_the_view_redraws_in_place_on_a_terminal(tmp_path: Path) -> None:
    proc, terminal = _driver_in_a_terminal(tmp_path, free_port())
    try:
        _wait_for("services started", lambda: len(_pids(tmp_path)) == 3)
        screen = _read_for(terminal, 3.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(terminal)
        if proc.poll() is None:
            proc.kill()
    text = screen.decode(errors="replace")
    assert "services" in text
    assert "svc0" in text
    assert "up, no /metrics" in text  # the supervisor says they run; sleepers serve no metrics
    # redrawn in place: the cursor goes back up over the last frame, many times
    assert text.count("\x1b[1A") > 10


def test_the_view_prints_plain_lines_into_a_pipe(tmp_path: Path) -> None:
    proc = _driver(tmp_path)
    assert proc.stdout is not None
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    lines = out.decode().splitlines()
    assert "\x1b[" not in out.decode()
    views = [line for line in lines if line.startswith("services: ")]
    assert len(views) >= 2  # a frame every 0.2 s, one below the other
    assert "svc0" in views[-1]
