"""The stack tool's promises: idempotent start, clear errors, stop by PID only."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from ess_stack.components import Redis, await_ready
from ess_stack.config import StackConfig
from ess_stack.errors import StackError
from ess_stack.procs import ManagedProcess
from helpers.disposable import free_port


def _redis(tmp_path: Path, port: int) -> Redis:
    redis = Redis(StackConfig(state_dir=tmp_path, redis_port=port))
    redis.provision()
    return redis


def test_start_is_idempotent_and_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    redis = _redis(tmp_path, free_port())
    redis.start()
    try:
        first = redis.status()
        redis.start()  # a second `make up`
        assert redis.status().pid == first.pid
        assert first.running
    finally:
        assert redis.stop()
    assert first.pid is not None
    assert not Path(f"/proc/{first.pid}").exists() or _is_zombie(first.pid)
    assert not redis.status().running
    assert not redis.stop()  # stopping twice is fine and says nothing ran


def test_a_port_held_by_a_stranger_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        redis = _redis(tmp_path, port)
        with pytest.raises(StackError, match=rf"^redis: port 127.0.0.1:{port} is already taken"):
            redis.start()


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        proc = ManagedProcess("redis", tmp_path / "redis.pid", tmp_path / "redis.log", "16379")
        (tmp_path / "redis.pid").write_text(f"{stranger.pid}\n")  # stale file, reused PID
        assert proc.pid() is None
        assert not proc.stop()
        assert stranger.poll() is None  # still alive: not ours, not touched
    finally:
        stranger.kill()
        stranger.wait()


def test_a_server_that_dies_during_start_names_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess("widget", tmp_path / "w.pid", tmp_path / "w.log", "never-matches")
    proc.start(["sh", "-c", "echo 'FATAL: could not bind'; exit 3"])
    time.sleep(0.2)
    with pytest.raises(StackError) as caught:
        await_ready("widget", proc, "127.0.0.1", free_port(), timeout_s=5)
    message = str(caught.value)
    assert message.startswith("widget: exited during start")
    assert "FATAL: could not bind" in message
    assert str(tmp_path / "w.log") in message


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
