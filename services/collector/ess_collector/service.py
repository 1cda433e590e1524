"""The collector service: wire inventory, pollers, spool and publisher; run them.

Shutdown order: stop polling (each endpoint finishes its current cycle), then
let the publisher drain the spool to Kafka within the drain bound, then close.
Whatever Kafka did not acknowledge stays in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from ess_collector.device import Device, PollLimits
from ess_collector.endpoint import EndpointPoller
from ess_collector.inventory import DeviceConfig, Inventory
from ess_collector.inventory_file import load_inventory
from ess_collector.metrics import CollectorMetrics
from ess_collector.publisher import SpoolingPublisher
from ess_collector.settings import CollectorSettings
from ess_collector.spool import Spool
from ess_common.backoff import Backoff
from ess_common.http import Health
from ess_common.kafka import ProducerOptions, ReadingProducer
from ess_common.model import Reading

log = logging.getLogger(__name__)

ReadingObserver = Callable[[Reading], None]
_STALL_S = 30.0  # an endpoint loop that has not turned for this long is stuck


class CollectorService:
    name = "collector"

    def __init__(
        self,
        settings: CollectorSettings,
        registry: CollectorRegistry,
        inventory: Inventory | None = None,
        observers: Sequence[ReadingObserver] = (),
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = CollectorMetrics(registry)
        self.inventory = inventory or load_inventory(settings.collector_inventory)
        self._observers = tuple(observers)
        s = settings
        self.spool = Spool(
            s.collector_spool_dir, s.collector_spool_max_bytes, s.collector_spool_segment_bytes
        )
        producer = ReadingProducer(
            s.kafka_bootstrap,
            s.topic_prefix,
            ProducerOptions(
                linger_ms=s.collector_linger_ms,
                compression=s.collector_compression,
                client_id="ess-collector",
            ),
        )
        self.publisher = SpoolingPublisher(
            self.spool,
            producer=producer,
            metrics=self.metrics,
            topic_prefix=s.topic_prefix,
            max_in_flight=s.collector_max_in_flight,
            retry=self._backoff(),
        )
        limits = PollLimits(
            request_timeout_s=s.collector_request_timeout_s,
            max_registers=s.collector_max_registers_per_read,
            gap_fill=s.collector_gap_fill,
        )
        self.endpoints = [
            EndpointPoller(
                site.id,
                endpoint,
                devices=[self._device(d) for d in endpoint.devices],
                limits=limits,
                connect_timeout_s=s.collector_connect_timeout_s,
                reconnect=self._backoff(),
                metrics=self.metrics,
                emit=self._emit,
                cycle_done=self.publisher.flush,
            )
            for site in self.inventory.sites
            for endpoint in site.endpoints
        ]

    def _device(self, config: DeviceConfig) -> Device:
        maps = self.inventory.register_maps
        register_map = maps[config.register_map] if config.register_map else None
        return Device(config, register_map, self._backoff())

    def _backoff(self) -> Backoff:
        s = self.settings
        jitter = random.Random()  # noqa: S311 - jitter, not cryptography
        return Backoff(s.collector_backoff_initial_s, s.collector_backoff_max_s, jitter)

    def devices(self) -> list[Device]:
        return [d for e in self.endpoints for d in e.devices]

    def _emit(self, reading: Reading) -> None:
        self.publisher.submit(reading)
        for observe in self._observers:
            observe(reading)

    def health(self) -> Health:
        """Unhealthy only when polling itself has stalled; Kafka's state is a detail.

        A Kafka outage is what the spool is for: restarting the collector would
        not bring Kafka back, so it must not fail the liveness probe.
        """
        now = time.monotonic()
        timeout = self.settings.collector_request_timeout_s
        stalled = [
            e.name
            for e in self.endpoints
            # a cycle may legitimately wait one timeout per device that just went silent
            if now - e.last_cycle_monotonic > _STALL_S + len(e.devices) * timeout
        ]
        last_ack = self.publisher.last_ack_monotonic
        return Health(
            ok=not stalled,
            detail={
                "endpoints": len(self.endpoints),
                "endpoints_connected": sum(1 for e in self.endpoints if e.client.is_connected()),
                "endpoints_stalled": stalled[:10],
                "kafka_ready": self.publisher.kafka_ready,
                "seconds_since_kafka_ack": None if last_ack is None else round(now - last_ack, 1),
                "spool_depth": self.spool.depth,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
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
        pollers = [asyncio.create_task(e.run(stop), name=f"poll {e.name}") for e in self.endpoints]
        try:
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({stopped, publishing}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if publishing.done():
                publishing.result()  # the publisher failed: surface the reason
                raise RuntimeError("publisher stopped by itself")
            await asyncio.gather(*pollers)
        finally:
            for task in pollers:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pollers, return_exceptions=True)
            self.publisher.flush()
            publisher_stop.set()
            await publishing
        log.info(
            "collector stopped: %d overruns, %d readings left in the spool",
            sum(e.overruns for e in self.endpoints),
            self.spool.depth,
        )
