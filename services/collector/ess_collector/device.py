"""One device behind an endpoint: what to read, how to decode it, and its health.

A device is polled with a sequence of planned reads on its endpoint's
connection. A SunSpec device first walks its model chain (again after every
reconnect, and after a read or decode error that suggests its layout moved).
A device that does not answer (timeout) is marked down and asked again only
when its backoff delay has passed, so a dead unit costs one timeout per
backoff step instead of one per second, and never more than that per slot.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from ess_collector.errors import (
    DiscoveryError,
    ExceptionReplyError,
    ModbusError,
    UndecodableError,
    UnplannableError,
)
from ess_collector.inventory import DeviceConfig, RegisterMap
from ess_collector.modbus_frames import ReadFunction
from ess_collector.planning import PlanError, ReadRequest, RegisterImage, plan_reads
from ess_collector.register_map import CompiledMap
from ess_collector.register_map import decode_device as decode_map_device
from ess_collector.register_map import spans as map_spans
from ess_collector.sunspec_device import SunSpecLayout, discover
from ess_collector.sunspec_device import decode_device as decode_sunspec_device
from ess_collector.values import DecodedValues
from ess_common.backoff import Backoff
from ess_common.model import DeviceId, Quality

log = logging.getLogger(__name__)


class RegisterReader(Protocol):
    """What a device needs from a connection (ReadOnlyModbusClient, or a fake in tests)."""

    async def read(
        self, function: ReadFunction, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int] | list[bool]: ...

    async def read_holding_registers(
        self, unit: int, address: int, count: int, timeout_s: float
    ) -> list[int]: ...


class Health(enum.IntEnum):
    """Poll order inside a cycle: healthy devices first, so others never wait on them."""

    UP = 0
    SLOW = 1  # answered, but its last poll took more than half the request timeout
    DOWN = 2  # did not answer: polled again only when its backoff has passed


@dataclass(frozen=True, slots=True)
class PollLimits:
    request_timeout_s: float
    max_registers: int
    gap_fill: int
    concurrency: int = 1  # devices polled at once on the endpoint (its requests in flight)


@dataclass
class PollResult:
    """What one poll produced: decoded values (None: nothing read) and what failed."""

    decoded: DecodedValues | None
    read_at: float
    errors: list[ModbusError] = field(default_factory=list)
    discovered: bool = False  # this poll walked a SunSpec model chain successfully


@dataclass(slots=True)
class RawPoll:
    """What one poll read, not yet decoded."""

    image: RegisterImage
    read_at: float
    errors: list[ModbusError]
    layout: SunSpecLayout | None  # SunSpec: the layout the reads were planned from
    discovered: bool = False


@dataclass
class Device:
    config: DeviceConfig
    register_map: RegisterMap | None
    backoff: Backoff
    health: Health = Health.UP
    next_probe_monotonic: float = 0.0
    last_duration_s: float = 0.0
    last_error: str | None = None
    probes: int = 0  # polls made while down: the "reconnect attempts" of a silent device
    layout: SunSpecLayout | None = None
    requests: list[ReadRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.device_id: DeviceId = self.config.device_id
        self.key = self.device_id.key
        self._map = CompiledMap(self.register_map) if self.register_map is not None else None

    @property
    def is_sunspec(self) -> bool:
        return self.register_map is None

    def probe_due(self, now_monotonic: float) -> bool:
        return self.health is not Health.DOWN or now_monotonic >= self.next_probe_monotonic

    def forget_layout(self) -> None:
        """Walk the model chain again before the next poll (after a reconnect)."""
        if self.is_sunspec:
            self.layout = None
            self.requests = []

    async def poll(self, client: RegisterReader, limits: PollLimits) -> PollResult:
        """Read and decode once; Modbus errors are returned, not raised."""
        return self.finish(await self.read(client, limits))

    async def read(self, client: RegisterReader, limits: PollLimits) -> RawPoll:
        """The reads of one poll (decoded later by `finish`, off the slot's critical path)."""
        started = time.monotonic()
        raw = await self._read(client, limits)
        self.last_duration_s = time.monotonic() - started
        self._update_health(raw.errors, bool(raw.image), limits)
        return raw

    async def _read(self, client: RegisterReader, limits: PollLimits) -> RawPoll:
        unit = self.config.unit
        timeout = limits.request_timeout_s
        discovered = False
        if not self.requests:
            try:
                await self._prepare(client, limits)
            except ModbusError as exc:
                if isinstance(exc, DiscoveryError | ExceptionReplyError | UnplannableError):
                    self._back_off()  # not a SunSpec device we can read: ask again later
                return RawPoll(RegisterImage(), time.time(), [exc], layout=None)
            discovered = self.is_sunspec
        image = RegisterImage()
        errors: list[ModbusError] = []
        for request in self.requests:
            try:
                values = await client.read(
                    request.space.function, unit, request.address, request.count, timeout
                )
            except ModbusError as exc:
                errors.append(exc)
                if exc.device_silent or exc.connection_broken:
                    break
                continue
            image.add(request, values)
        return RawPoll(image, time.time(), errors, self.layout, discovered)

    def finish(self, raw: RawPoll) -> PollResult:
        """Decode what a poll read (the layout it was read with)."""
        errors = raw.errors
        if not raw.image:
            return PollResult(None, raw.read_at, errors, raw.discovered)
        try:
            decoded = self.decode(raw.image, raw.layout)
        except ValueError as exc:  # SunSpecError among them: the layout may have moved
            self._forget(raw.layout)
            failed = [*errors, UndecodableError(str(exc))]
            return PollResult(None, raw.read_at, failed, raw.discovered)
        if errors:
            decoded.quality |= Quality.PARTIAL
            if self.is_sunspec and any(_layout_suspect(e) for e in errors):
                self._forget(raw.layout)
        return PollResult(decoded, raw.read_at, errors, raw.discovered)

    def _forget(self, layout: SunSpecLayout | None) -> None:
        if layout is self.layout:  # not a layout walked again since that read
            self.forget_layout()

    async def _prepare(self, client: RegisterReader, limits: PollLimits) -> None:
        gap_fill = self.config.gap_fill if self.config.gap_fill is not None else limits.gap_fill
        if self.register_map is not None:
            spans = map_spans(self.register_map)
        else:

            async def read_holding(address: int, count: int) -> list[int]:
                return await client.read_holding_registers(
                    self.config.unit, address, count, limits.request_timeout_s
                )

            self.layout = await discover(
                read_holding, self.device_id.table, self.config.sunspec_base
            )
            spans = self.layout.spans()
            log.debug(
                "discovered %s: SunSpec at %d, models %s",
                self.key,
                self.layout.base,
                list(self.layout.chain),
                extra={"device": self.key},
            )
        try:
            self.requests = plan_reads(spans, max_registers=limits.max_registers, gap_fill=gap_fill)
        except PlanError as exc:
            raise UnplannableError(str(exc)) from None

    def decode(self, image: RegisterImage, layout: SunSpecLayout | None = None) -> DecodedValues:
        if self._map is not None:
            return decode_map_device(self._map, image)
        layout = layout or self.layout
        assert layout is not None
        return decode_sunspec_device(self.device_id.table, layout, image)

    def _update_health(self, errors: list[ModbusError], answered: bool, limits: PollLimits) -> None:
        silent = any(e.device_silent for e in errors)
        if silent:
            self._back_off()
        elif answered:
            if self.health is Health.DOWN:
                log.info("%s answers again", self.key, extra={"device": self.key})
            self.backoff.reset()
            slow = self.last_duration_s > limits.request_timeout_s / 2
            self.health = Health.SLOW if slow else Health.UP
        reason = errors[0].reason if errors else None
        if reason is not None and reason != self.last_error:
            log.warning("%s: %s", self.key, errors[0], extra={"device": self.key, "reason": reason})
        self.last_error = reason

    def _back_off(self) -> None:
        delay = self.backoff.next_delay()
        if self.health is not Health.DOWN:
            log.warning(
                "%s is down; next try in %.1fs", self.key, delay, extra={"device": self.key}
            )
        self.health = Health.DOWN
        self.next_probe_monotonic = time.monotonic() + delay


def _layout_suspect(error: ModbusError) -> bool:
    return isinstance(error, ExceptionReplyError) and error.reason == "exception_illegal_address"
