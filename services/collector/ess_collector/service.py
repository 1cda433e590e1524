"""The collector service: run the pollers and the publisher (built by `bootstrap`).

Shutdown order: stop polling (each endpoint finishes its current cycle), then
let the publisher drain the spool to Kafka within the drain bound, then close.
Whatever Kafka did not acknowledge stays in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from ess_collector.after_reads import AfterReads
from ess_collector.assignment import AllSites, SiteAssignment
from ess_collector.device import Device
from ess_collector.endpoint import EndpointPoller
from ess_collector.inventory import Inventory
from ess_collector.metrics import CollectorMetrics
from ess_collector.publisher import SpoolingPublisher
from ess_collector.registration import Registrar
from ess_collector.settings import CollectorSettings
from ess_common.http import Health

log = logging.getLogger(__name__)

_STALL_S = 30.0  # an endpoint loop that has not turned for this long is stuck


class CollectorService:
    name = "collector"

    def __init__(
        self,
        settings: CollectorSettings,
        registry: CollectorRegistry,  # where the pollers' and publisher's metrics are
        *,
        inventory: Inventory,
        endpoints: Sequence[EndpointPoller],
        publisher: SpoolingPublisher,
        after_reads: AfterReads | None = None,
        registrar: Registrar | None = None,
        assignment: SiteAssignment | None = None,
        metrics: CollectorMetrics | None = None,
    ) -> None:
        """The pollers and the publisher come wired (see `ess_collector.bootstrap`);
        `registrar` registers the inventory in the fleet registry (once, in the background)."""
        self.settings = settings
        self.registry = registry
        self.inventory = inventory
        self.endpoints = list(endpoints)
        self.publisher = publisher
        self.spool = publisher.spool
        self.registrar = registrar
        self.after_reads = after_reads
        self.assignment = assignment or AllSites([site.id for site in inventory.sites])
        self.metrics = metrics
        if metrics is not None:
            metrics.inventory_sites.set(len(inventory.sites))
        self.owned: frozenset[str] = frozenset()  # sites this replica polls now
        self._site_stops: dict[str, asyncio.Event] = {}
        self._site_tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def devices(self) -> list[Device]:
        return [d for e in self.endpoints for d in e.devices]

    def active_endpoints(self) -> list[EndpointPoller]:
        return [e for e in self.endpoints if e.site in self.owned]

    def health(self) -> Health:
        """Unhealthy only when polling itself has stalled; Kafka's state is a detail.

        A Kafka outage is what the spool is for: restarting the collector would
        not bring Kafka back, so it must not fail the liveness probe.
        """
        now = time.monotonic()
        timeout = self.settings.collector_request_timeout_s
        stalled = [
            e.name
            for e in self.active_endpoints()
            # a cycle may legitimately wait one timeout per device that just went silent
            if now - e.last_cycle_monotonic > _STALL_S + len(e.devices) * timeout
        ]
        last_ack = self.publisher.last_ack_monotonic
        return Health(
            ok=not stalled,
            detail={
                "endpoints": len(self.endpoints),
                "sites_owned": len(self.owned),
                "endpoints_connected": sum(1 for e in self.endpoints if e.client.is_connected()),
                "endpoints_stalled": stalled[:10],
                "kafka_ready": self.publisher.kafka_ready,
                "seconds_since_kafka_ack": None if last_ack is None else round(now - last_ack, 1),
                "spool_depth": self.spool.depth,
            },
        )

    def _apply_sites(self, sites: frozenset[str]) -> None:
        """Poll exactly `sites` from now on: start the new ones, stop the others."""
        if self._stopping:
            return  # a late assignment while shutting down
        known = {site.id for site in self.inventory.sites}
        sites = sites & known
        for site in self.owned - sites:
            self._site_stops.pop(site).set()  # its endpoints finish their cycle and close
        for site in sites - self.owned:
            stop = self._site_stops[site] = asyncio.Event()
            previous = self._site_tasks.get(site)
            self._site_tasks[site] = asyncio.create_task(
                self._run_site(site, stop, previous), name=f"site {site}"
            )
        if sites != self.owned:
            started, stopped = len(sites - self.owned), len(self.owned - sites)
            log.info("polling %d sites (%d started, %d stopped)", len(sites), started, stopped)
        self.owned = sites
        if self.metrics is not None:
            self.metrics.sites_owned.set(len(sites))
            self.metrics.assignments.inc()

    async def _run_site(
        self, site: str, stop: asyncio.Event, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:  # handed back quickly: the old run closes first
            await asyncio.gather(previous, return_exceptions=True)
        endpoints = [e for e in self.endpoints if e.site == site]
        await asyncio.gather(*(e.run(stop) for e in endpoints))

    async def run(self, stop: asyncio.Event) -> None:
        # What exists now (inventory, models, plans) lives as long as the process: out of
        # the collector's reach, a full collection no longer walks it (shorter pauses).
        gc.freeze()
        log.info(
            "polling %d devices on %d endpoints of %d sites",
            len(self.devices()),
            len(self.endpoints),
            len(self.inventory.sites),
        )
        publisher_stop = asyncio.Event()
        publishing = asyncio.create_task(
            self.publisher.run(publisher_stop, self.settings.drain_timeout_s * 0.75),
            name="publisher",
        )
        finishing = (
            None
            if self.after_reads is None
            else asyncio.create_task(self.after_reads.run(), name="after-reads")
        )
        background = [
            asyncio.create_task(self.assignment.run(self._apply_sites, stop), name="assignment")
        ]
        if self.registrar is not None:
            background.append(asyncio.create_task(self.registrar.run(stop), name="registration"))
        try:
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({stopped, publishing}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if publishing.done():
                publishing.result()  # the publisher failed: surface the reason
                raise RuntimeError("publisher stopped by itself")
            self._apply_sites(frozenset())  # each endpoint finishes its current cycle
            self._stopping = True
            await asyncio.gather(*self._site_tasks.values(), *background)
        finally:
            tasks = [*self._site_tasks.values(), *background]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            if finishing is not None and self.after_reads is not None:
                finishing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await finishing
                self.after_reads.drain_now()  # what the last cycles read reaches the spool
            self.publisher.flush()
            publisher_stop.set()
            await publishing
        log.info(
            "collector stopped: %d overruns, %d readings left in the spool",
            sum(e.overruns for e in self.endpoints),
            self.spool.depth,
        )
