"""Starting, finding and stopping the stack's own processes, by PID only.

A PID file alone is not proof: PIDs get reused. A process counts as ours only
when its command line still contains the marker we started it with (its data
directory or config path), so `down` can never signal a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ManagedProcess:
    name: str
    pid_file: Path
    log_file: Path
    marker: str
    spawned: int | None = None  # the PID this object started, whatever its command line says

    def pid(self) -> int | None:
        """PID of our running process, or None (stale PID files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _cmdline_has(pid, self.marker):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec_fn,  # noqa: PLW1509 (the supervisor's die-with-parent hook)
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        self.spawned = proc.pid
        return proc.pid

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> bool:
        """Signal our process and wait for it; SIGKILL after the timeout. True if it ran."""
        pid = self.pid() or self.spawned
        if pid is None or not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if not _wait_gone(pid, timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
        self.pid_file.unlink(missing_ok=True)
        self.spawned = None
        return True

    def exited_early(self) -> bool:
        return self.spawned is not None and not _alive(self.spawned)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _cmdline_has(pid: int, marker: str) -> bool:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False
    return state != "Z" and marker in raw.replace(b"\0", b" ").decode(errors="replace")


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0


def wait_port(host: str, port: int, timeout_s: float, proc: ManagedProcess | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if proc is not None and proc.exited_early():
            return False
        time.sleep(0.2)
    return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"
