"""Consecutive free ports for a fleet whose site i listens on base_port + i
(tests and benchmarks that run the simulator as a process)."""

from __future__ import annotations

import socket


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """A first port with `count` free ports after it (checked, not reserved)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((host, 0))
            first = int(probe.getsockname()[1])
        if first + count < 65000 and all(port_free(first + i, host) for i in range(count)):
            return first
    raise RuntimeError(f"no block of {count} free ports")
