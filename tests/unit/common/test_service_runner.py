"""The service runner: health and metrics endpoints, draining, exit codes."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from prometheus_client import CollectorRegistry, Counter

from ess_common.http import Health, ObservabilityServer
from ess_common.runner import ExitCode, serve
from ess_common.settings import CommonSettings, ConfigError


class FakeService:
    """Pure stand-in for a service: the runner is what is under test here."""

    name = "fake"

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.healthy = True
        self.finished_cleanly = False

    def health(self) -> Health:
        return Health(self.healthy, {"behaviour": self.behaviour})

    async def run(self, stop: asyncio.Event) -> None:
        if self.behaviour == "crash":
            raise RuntimeError("boom")
        if self.behaviour == "config":
            raise ConfigError("ESS_X: bad")
        if self.behaviour == "stubborn":
            await asyncio.sleep(3600)  # ignores stop: must be cancelled after the drain bound
        await stop.wait()
        await asyncio.sleep(0.05)  # finishing the current unit of work
        self.finished_cleanly = True


async def _http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _settings(**over: object) -> CommonSettings:
    return CommonSettings.model_validate({"http_port": 0, "drain_timeout_s": 0.5, **over})


async def test_healthz_and_metrics_are_served_and_sigterm_drains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    Counter("ess_fake_things_total", "things", registry=registry).inc(3)
    service = FakeService("normal")
    ports: list[int] = []
    listening = asyncio.Event()
    original = ObservabilityServer.start

    async def remember_port(self: ObservabilityServer) -> None:
        await original(self)
        ports.append(self.port)
        listening.set()

    monkeypatch.setattr(ObservabilityServer, "start", remember_port)
    task = asyncio.create_task(serve(service, _settings(), registry))
    await asyncio.wait_for(listening.wait(), 5)

    status, body = await _http_get(ports[0], "/metrics")
    assert status == 200
    assert b"ess_fake_things_total 3.0" in body
    status, body = await _http_get(ports[0], "/healthz")
    assert (status, body) == (200, b'{"ok":true,"behaviour":"normal"}')
    service.healthy = False
    status, _ = await _http_get(ports[0], "/healthz")
    assert status == 503
    status, _ = await _http_get(ports[0], "/nope")
    assert status == 404

    os.kill(os.getpid(), signal.SIGTERM)  # the runner's handler turns it into `stop`
    assert await asyncio.wait_for(task, 5) == ExitCode.OK
    assert service.finished_cleanly


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [("crash", ExitCode.FAILED), ("config", ExitCode.CONFIG)],
)
async def test_a_failing_service_gives_a_meaningful_exit_code(
    behaviour: str, code: ExitCode
) -> None:
    assert await serve(FakeService(behaviour), _settings(), CollectorRegistry()) == code


async def test_work_that_ignores_stop_is_cancelled_after_the_drain_bound() -> None:
    service = FakeService("stubborn")
    task = asyncio.create_task(serve(service, _settings(drain_timeout_s=0.3), CollectorRegistry()))
    await asyncio.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(task, 5) == ExitCode.OK
    assert asyncio.get_running_loop().time() - started < 2
    assert not service.finished_cleanly
