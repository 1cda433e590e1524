"""One Modbus endpoint (a device or a site gateway): its connection and its poll loop.

Every second, on the wall-clock boundary, the endpoint's devices are polled
one after another over its single connection: healthy devices first, then
slow ones, then those that were down and whose backoff has passed, each
of the latter only if a whole request timeout still fits before the next
boundary. A cycle still running at a boundary makes that slot an overrun:
counted, skipped, never queued. The connection reconnects in the background
with capped, jittered backoff; after a reconnect SunSpec devices walk their
model chain again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from ess_collector.after_reads import AfterReads
from ess_collector.device import Device, Health, PollLimits, PollResult, RawPoll, RegisterReader
from ess_collector.inventory import EndpointConfig
from ess_collector.metrics import CollectorMetrics
from ess_collector.schedule import next_slot, overrun_slots, stepped_back, time_left_in_slot
from ess_collector.values import build_reading
from ess_common.backoff import Backoff
from ess_common.model import Reading

log = logging.getLogger(__name__)

ReadingSink = Callable[[Reading], None]


class ModbusConnection(RegisterReader, Protocol):
    """One endpoint's connection (ReadOnlyModbusClient, or a fake in tests)."""

    def is_connected(self) -> bool: ...

    async def connect(self, timeout_s: float) -> None:
        """Open the connection; raises OSError or TimeoutError."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _DeviceMeters:
    """A device's labelled metric children, looked up once (labels() is not free)."""

    ok: Counter
    partial: Counter
    failed: Counter
    readings: Counter
    probes: Counter
    up: Gauge
    poll_seconds: Histogram
    lateness: Histogram

    @classmethod
    def of(cls, metrics: CollectorMetrics, site: str, device: Device) -> _DeviceMeters:
        table = device.device_id.table
        return cls(
            ok=metrics.polls.labels(site, table, "ok"),
            partial=metrics.polls.labels(site, table, "partial"),
            failed=metrics.polls.labels(site, table, "failed"),
            readings=metrics.readings.labels(site, table),
            probes=metrics.probes.labels(site),
            up=metrics.device_up.labels(site, device.key),
            poll_seconds=metrics.poll_seconds.labels(table),
            lateness=metrics.slot_lateness.labels(table),
        )


class EndpointPoller:
    def __init__(
        self,
        site: str,
        config: EndpointConfig,
        *,
        client: ModbusConnection,
        devices: list[Device],
        limits: PollLimits,
        connect_timeout_s: float,
        reconnect: Backoff,
        metrics: CollectorMetrics,
        emit: ReadingSink,
        cycle_done: Callable[[], None],
        after_reads: AfterReads | None = None,
    ) -> None:
        """With `after_reads`, each poll is decoded and emitted there once the slot's
        reads are done; without, at once, and `cycle_done` follows each cycle."""
        self.site = site
        self.name = f"{config.host}:{config.port}"
        self.devices = devices
        self.client = client
        self.overruns = 0
        self.last_cycle_monotonic = time.monotonic()  # liveness: the loop keeps turning
        self._limits = limits
        self._connect_timeout_s = connect_timeout_s
        self._reconnect = reconnect
        self._metrics = metrics
        self._emit = emit
        self._cycle_done = cycle_done
        self._after_reads = after_reads
        self._reconnecting: asyncio.Task[None] | None = None
        self._was_connected = False
        self._connect_failures_logged = False
        self._stopping = False
        self._meters = {d.key: _DeviceMeters.of(metrics, site, d) for d in devices}
        self._failures: dict[str, Counter] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on every boundary until `stop`; the current cycle always finishes.
        May run again after it returned (a site handed back to this replica)."""
        self._stopping = False
        await self._connect()
        last_slot: int | None = None
        try:
            while not stop.is_set():
                slot = next_slot(time.time(), last_slot)
                if not await _sleep_until(slot):
                    self._clock_stepped(slot)
                    continue
                if stop.is_set():
                    break
                try:
                    await self.poll_cycle(slot)
                except Exception:  # the loop boundary: one bad cycle never stops polling
                    log.exception("poll cycle of %s (%s) failed", self.name, self.site)
                self.last_cycle_monotonic = time.monotonic()
                missed = overrun_slots(slot, time.time())
                if missed:
                    self.overruns += missed
                    self._metrics.overruns.labels(self.site).inc(missed)
                last_slot = slot + missed
        finally:
            self._stopping = True
            if self._reconnecting is not None:
                self._reconnecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reconnecting
            await self.client.close()
            if self._was_connected:
                self._was_connected = False
                self._metrics.endpoint_connected.labels(self.site).dec()

    async def poll_cycle(self, slot: int) -> None:
        """Poll every device that is due, once, for `slot`."""
        if not self.client.is_connected():
            self._lost_connection()
            for device in self.devices:
                self._meters[device.key].up.set(0)
            return
        now = time.monotonic()
        due = sorted(
            (d for d in self.devices if d.probe_due(now)), key=lambda d: d.health
        )  # stable: inventory order within each health group
        after = self._after_reads
        if after is not None:
            after.cycle_started()
        try:
            if self._limits.concurrency == 1:
                for device in due:
                    if not await self._poll_device(device, slot):
                        break
            else:  # pipelined: this many devices wait for replies at once, in health order
                queue = iter(due)

                async def worker() -> None:
                    for device in queue:
                        if not await self._poll_device(device, slot):
                            return

                workers = min(self._limits.concurrency, len(due))
                await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            if after is not None:
                after.cycle_finished()
        if after is None:
            self._cycle_done()

    async def _poll_device(self, device: Device, slot: int) -> bool:
        """Poll one device for `slot`; False when the connection is gone."""
        if device.health is Health.DOWN:
            if time_left_in_slot(slot, time.time()) < self._limits.request_timeout_s:
                return True  # no room for a timeout before the next boundary: try next slot
            device.probes += 1
            self._meters[device.key].probes.inc()
        raw = await device.read(self.client, self._limits)
        duration = device.last_duration_s
        if self._after_reads is None:
            self._record(device, slot, device.finish(raw), duration)
        else:
            self._after_reads.add(functools.partial(self._finish, device, slot, raw, duration))
        if not self.client.is_connected():
            self._lost_connection()
            return False
        return True

    def _finish(self, device: Device, slot: int, raw: RawPoll, duration_s: float) -> None:
        self._record(device, slot, device.finish(raw), duration_s)

    def _record(self, device: Device, slot: int, result: PollResult, duration_s: float) -> None:
        meters = self._meters[device.key]
        for error in result.errors:
            self._failure_counter(error.reason).inc()
            if error.reason == "discovery":
                self._metrics.discoveries.labels(self.site, "failed").inc()
        if result.discovered:
            self._metrics.discoveries.labels(self.site, "ok").inc()
        meters.poll_seconds.observe(duration_s)
        if result.decoded is None:
            meters.failed.inc()
            meters.up.set(0)
            return
        try:
            reading = build_reading(device.device_id, slot, result.read_at, result.decoded)
        except ValueError as exc:  # a decoded value the data model refuses
            log.warning(
                "%s: cannot build a reading: %s", device.key, exc, extra={"device": device.key}
            )
            self._failure_counter("decode").inc()
            meters.failed.inc()
            return
        (meters.partial if result.errors else meters.ok).inc()
        meters.up.set(1)
        meters.readings.inc()
        meters.lateness.observe(max(0.0, result.read_at - slot))
        self._emit(reading)

    def _clock_stepped(self, slot: int) -> None:
        log.warning(
            "%s: the wall clock stepped back %.0fs; polling follows it",
            self.name,
            slot - time.time(),
        )
        self._metrics.clock_steps.labels(self.site).inc()

    def _failure_counter(self, reason: str) -> Counter:
        counter = self._failures.get(reason)
        if counter is None:
            counter = self._failures[reason] = self._metrics.poll_failures.labels(self.site, reason)
        return counter

    # -- connection ----------------------------------------------------------------

    async def _connect(self) -> bool:
        try:
            await self.client.connect(self._connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            self._metrics.connects.labels(self.site, "failed").inc()
            if not self._connect_failures_logged:
                log.warning("cannot connect to %s (%s): %s", self.name, self.site, exc or "timeout")
                self._connect_failures_logged = True
            self._start_reconnecting()
            return False
        self._metrics.connects.labels(self.site, "ok").inc()
        self._metrics.endpoint_connected.labels(self.site).inc()
        self._was_connected = True
        self._connect_failures_logged = False
        self._reconnect.reset()
        for device in self.devices:
            device.forget_layout()  # SunSpec devices walk their model chain again
        log.info("connected to %s (%s)", self.name, self.site)
        return True

    def _lost_connection(self) -> None:
        if self._was_connected:
            self._was_connected = False
            self._metrics.endpoint_connected.labels(self.site).dec()
            log.warning("lost the connection to %s (%s)", self.name, self.site)
        self._start_reconnecting()

    def _start_reconnecting(self) -> None:
        running = self._reconnecting is not None and not self._reconnecting.done()
        if self._stopping or running or self.client.is_connected():
            return
        self._reconnecting = asyncio.create_task(
            self._reconnect_loop(), name=f"reconnect {self.name}"
        )

    async def _reconnect_loop(self) -> None:
        """Reconnect after jittered, growing delays, off the slot boundaries."""
        while not self._stopping:
            await asyncio.sleep(self._reconnect.next_delay())
            if await self._connect():
                return


async def _sleep_until(slot: int) -> bool:
    """Sleep until the wall clock reaches `slot` (re-checked: timers may fire early).

    False, at once, when the clock stepped back (before or during the sleep) so
    far that `slot` is more than `MAX_WAIT_S` away: the caller picks a new slot.
    """
    while (delay := slot - time.time()) > 0:
        if stepped_back(slot, time.time()):
            return False
        await asyncio.sleep(min(delay, 1.0))
    return True
