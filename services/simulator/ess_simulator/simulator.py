"""The simulator as one object: build every site, serve, control, stop.

`async with Simulator(config) as sim:` serves the fleet; `sim.set_fault(...)`
and friends are the in-process control API (the HTTP endpoint calls them too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pymodbus.framer import FramerType

from ess_simulator.config import ConfigError, FleetConfig
from ess_simulator.control_http import ControlServer
from ess_simulator.datastore import SiteDatastore
from ess_simulator.endpoint import DeviceEndpoint
from ess_simulator.fast_gateway import FastGatewayServer
from ess_simulator.faults import FaultBoard, FaultSpec, UnknownTargetError
from ess_simulator.gateway import SiteGatewayServer
from ess_simulator.inventory import build_inventory
from ess_simulator.noise import stable_key
from ess_simulator.prerender import prerender_forever
from ess_simulator.site_model import SiteModel
from ess_simulator.topology import SitePlan, plan_fleet
from ess_simulator.vendor_map import VendorMap, load_vendor_map

log = logging.getLogger(__name__)


class ListenError(OSError):
    """A site's port could not be listened on (in use, bad address)."""


class Gateway(Protocol):
    """A site's listening endpoint (pymodbus's server or the fast one)."""

    datastore: SiteDatastore

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def bound_port(self) -> int: ...


class Simulator:
    def __init__(self, config: FleetConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.sites: tuple[SitePlan, ...] = plan_fleet(config)
        self._clock = clock
        self.vendor_map: VendorMap | None = None
        if any(site.protocol == "vendor" for site in self.sites):
            self.vendor_map = load_vendor_map(Path(config.vendor_map))
        targets = {site.site_id for site in self.sites}
        targets |= {device.device_id for site in self.sites for device in site.devices}
        self.fault_board = FaultBoard(targets)
        for target, spec in config.faults.items():
            try:
                self.fault_board.set(target, spec)
            except UnknownTargetError as exc:
                raise ConfigError(f"faults: unknown device or site {target!r}") from exc
        self._gateways: dict[str, Gateway] = {}
        self._prerender: asyncio.Task[None] | None = None
        self._ports: dict[str, int] = {}
        self._control: ControlServer | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every site port (and the control port); all or nothing."""
        try:
            for site in self.sites:
                await self._start_site(site)
            if self.config.serving == "fast":
                datastores = [g.datastore for g in self._gateways.values()]
                self._prerender = asyncio.create_task(
                    prerender_forever(datastores, self._clock), name="prerender"
                )
            if self.config.control_port is not None:
                self._control = ControlServer(self, self.config.host, self.config.control_port)
                await self._control.start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "simulator serving",
            extra={
                "sites": len(self.sites),
                "devices": sum(len(site.devices) for site in self.sites),
                "host": self.config.host,
                "control_port": self.control_port,
            },
        )

    async def _start_site(self, site: SitePlan) -> None:
        model = SiteModel(site, self.config)
        vendor_map = self.vendor_map if site.protocol == "vendor" else None
        endpoints = [
            DeviceEndpoint(
                device, model, vendor_map.points(device.kind) if vendor_map is not None else None
            )
            for device in site.devices
        ]
        datastore = SiteDatastore(site.site_id, endpoints, self.fault_board, self._clock)
        port = self.config.base_port + site.position if self.config.base_port else 0
        # Seeded, not secret: drop_probability must replay the same way for a given seed.
        rng = random.Random(stable_key(self.config.seed, site.site_id, "drops"))  # noqa: S311
        gateway: Gateway
        if self.config.serving == "fast":
            host = self.config.host
            gateway = FastGatewayServer(
                datastore, self.fault_board, host, port, rng, framing=site.framing
            )
        else:
            framer = FramerType.RTU if site.framing == "rtu" else FramerType.SOCKET
            gateway = SiteGatewayServer(
                datastore, self.fault_board, self.config.host, port, rng, framer=framer
            )
        try:
            await gateway.start()
        except OSError as exc:
            raise ListenError(
                f"{site.site_id}: cannot listen on {self.config.host}:{port}: {exc}"
            ) from exc
        self._gateways[site.site_id] = gateway
        self._ports[site.site_id] = gateway.bound_port

    async def stop(self) -> None:
        """Close every listener and connection; safe to call twice."""
        prerender, self._prerender = self._prerender, None
        if prerender is not None:
            prerender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prerender
        control, self._control = self._control, None
        if control is not None:
            await control.stop()
        gateways, self._gateways = self._gateways, {}
        for gateway in gateways.values():
            await gateway.stop()
        if gateways:
            log.info("simulator stopped", extra={"sites": len(gateways)})

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addresses ---------------------------------------------------------------

    @property
    def control_port(self) -> int | None:
        return self._control.port if self._control is not None else None

    def port(self, site_id: str) -> int:
        return self._ports[site_id]

    def inventory(self) -> dict[str, Any]:
        ports = self._ports or {
            site.site_id: self.config.base_port + site.position for site in self.sites
        }
        return build_inventory(
            self.sites,
            host=self.config.host,
            ports=ports,
            seed=self.config.seed,
            vendor_map_path=self.config.vendor_map,
            vendor_map_name=self.vendor_map.name if self.vendor_map is not None else "",
        )

    def devices(self) -> list[dict[str, Any]]:
        faults = self.fault_board.snapshot()
        return [
            {
                "device_id": device.device_id,
                "site_id": site.site_id,
                "kind": device.kind.value,
                "protocol": site.protocol,
                "host": self.config.host,
                "port": self._ports.get(site.site_id),
                "unit_id": device.unit_id,
                "faults": faults[device.device_id].model_dump()
                if device.device_id in faults
                else None,
            }
            for site in self.sites
            for device in site.devices
        ]

    # -- faults ------------------------------------------------------------------

    def faults(self) -> dict[str, FaultSpec]:
        return self.fault_board.snapshot()

    def set_fault(self, target: str, spec: FaultSpec | Mapping[str, Any]) -> FaultSpec:
        """Replace the faults of a device or site; raises UnknownTargetError."""
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.model_validate(dict(spec))
        self.fault_board.set(target, spec)
        log.info("faults set", extra={"target": target, "faults": spec.model_dump()})
        return spec

    def clear_fault(self, target: str) -> None:
        self.fault_board.clear(target)
        log.info("faults cleared", extra={"target": target})

    def clear_faults(self) -> None:
        self.fault_board.clear_all()
        log.info("all faults cleared")
