"""Service runner: the one place that handles signals, draining and exit codes.

Shutdown follows arq: on SIGTERM/SIGINT stop taking work (the service sees
`stop` set), wait up to `drain_timeout_s` for it to finish what it holds, then
cancel what is left and log one summary line.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from ess_common.http import Health, ObservabilityServer
from ess_common.logs import configure_logging
from ess_common.settings import CommonSettings, ConfigError, load_settings

log = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    CONFIG = 78  # sysexits EX_CONFIG: fix the configuration, restarting will not help


class Service(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then finish the current unit of work and return."""

    def health(self) -> Health: ...


S = TypeVar("S", bound=CommonSettings)


async def serve(
    service: Service, settings: CommonSettings, registry: CollectorRegistry
) -> ExitCode:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http = ObservabilityServer(registry, service.health, settings.http_host, settings.http_port)
    await http.start()
    log.info("%s started", service.name, extra={"service": service.name, "http_port": http.port})
    started = time.monotonic()
    work = asyncio.create_task(service.run(stop), name=f"{service.name}.run")
    stopper = asyncio.create_task(stop.wait())
    code = ExitCode.OK
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            log.info("%s stopping, draining up to %.0fs", service.name, settings.drain_timeout_s)
            done, _ = await asyncio.wait({work}, timeout=settings.drain_timeout_s)
            if not done:
                work.cancel()
                await asyncio.wait({work})
                log.warning("%s drain timed out; cancelled remaining work", service.name)
        elif not stop.is_set():
            stop.set()  # the service ended on its own: treat as a failure unless it was clean
        code = _exit_code_of(work)
    finally:
        stopper.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await http.stop()
        log.info(
            "%s stopped",
            service.name,
            extra={
                "service": service.name,
                "exit_code": int(code),
                "uptime_s": round(time.monotonic() - started, 1),
            },
        )
    return code


def _exit_code_of(work: asyncio.Task[None]) -> ExitCode:
    if work.cancelled():
        return ExitCode.OK
    exc = work.exception()
    if exc is None:
        return ExitCode.OK
    if isinstance(exc, ConfigError):
        log.error("configuration error: %s", exc)
        return ExitCode.CONFIG
    log.error("service failed", exc_info=exc)
    return ExitCode.FAILED


def main_entry(settings_cls: type[S], build: Callable[[S, CollectorRegistry], Service]) -> NoReturn:
    """Console entry point of a service: settings -> logging -> serve -> exit code."""
    try:
        settings = load_settings(settings_cls)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(ExitCode.CONFIG)
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(asyncio.run(_build_and_serve(settings, build)))


async def _build_and_serve(settings: S, build: Callable[[S, CollectorRegistry], Service]) -> int:
    # Built inside the loop: aiokafka clients bind to the running loop at construction.
    registry = CollectorRegistry()
    try:
        service = build(settings, registry)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)  # noqa: TRY400 - no traceback needed
        return ExitCode.CONFIG
    return await serve(service, settings, registry)
