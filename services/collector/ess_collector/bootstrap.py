"""Wiring the collector: inventory, Modbus connections, devices, pollers, spool, publisher."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from ess_collector.after_reads import AfterReads
from ess_collector.assignment import AllSites, KafkaGroupAssignment, SiteAssignment, StaticShare
from ess_collector.device import Device, PollLimits
from ess_collector.endpoint import EndpointPoller, ModbusConnection
from ess_collector.inventory import DeviceConfig, EndpointConfig, Inventory
from ess_collector.inventory_file import load_inventory
from ess_collector.kafka_batches import BatchingProducer
from ess_collector.metrics import CollectorMetrics
from ess_collector.modbus_client import ReadOnlyModbusClient
from ess_collector.publisher import SpoolingPublisher
from ess_collector.registration import Registrar, first_poll_now, inventory_records
from ess_collector.service import CollectorService
from ess_collector.settings import CollectorSettings
from ess_collector.site_share import ordinal_of
from ess_collector.spool import Spool
from ess_common.backoff import Backoff
from ess_common.kafka import ProducerOptions, RawProducer
from ess_common.model import Reading
from ess_common.settings import ConfigError

ReadingObserver = Callable[[Reading], None]


def bootstrap(
    settings: CollectorSettings,
    registry: CollectorRegistry,
    *,
    inventory: Inventory | None = None,
    observers: Sequence[ReadingObserver] = (),
    connection: Callable[[str, int], ModbusConnection] | None = None,
    producer: RawProducer | None = None,
) -> CollectorService:
    """The service for `settings`.

    `inventory` defaults to the configured file; each of `observers` sees every
    reading handed to the publisher (tests, benchmarks); `connection` (host,
    port) and `producer` replace the Modbus and Kafka clients (unit tests);
    by default each endpoint gets a client with its framing, requests in
    flight and gap, and its own request timeout.
    """
    s = settings
    metrics = CollectorMetrics(registry)
    inventory = inventory or load_inventory(s.collector_inventory)
    spool = Spool(
        s.collector_spool_dir, s.collector_spool_max_bytes, s.collector_spool_segment_bytes
    )
    publisher = SpoolingPublisher(
        spool,
        producer=producer or _kafka_producer(s),
        metrics=metrics,
        topic_prefix=s.topic_prefix,
        max_in_flight=s.collector_max_in_flight,
        retry=_backoff(s),
    )
    emit = _emitter(publisher, observers)
    after_reads = AfterReads(publisher.flush)
    endpoints = [
        EndpointPoller(
            site.id,
            endpoint,
            client=_modbus_client(endpoint)
            if connection is None
            else connection(endpoint.host, endpoint.port),
            devices=[_device(d, inventory, s) for d in endpoint.devices],
            limits=_limits(endpoint, s),
            connect_timeout_s=s.collector_connect_timeout_s,
            reconnect=_backoff(s),
            metrics=metrics,
            emit=emit,
            cycle_done=publisher.flush,
            after_reads=after_reads,
        )
        for site in inventory.sites
        for endpoint in site.endpoints
    ]
    return CollectorService(
        s,
        registry,
        inventory=inventory,
        endpoints=endpoints,
        publisher=publisher,
        after_reads=after_reads,
        assignment=site_assignment(s, [site.id for site in inventory.sites]),
        metrics=metrics,
        registrar=None
        if producer is not None  # unit tests without Kafka
        else Registrar(
            s.kafka_bootstrap,
            s.topic_prefix,
            inventory_records(inventory, first_poll_now()),
            _backoff(s),
        ),
    )


def site_assignment(settings: CollectorSettings, sites: list[str]) -> SiteAssignment:
    """All sites, a static share by StatefulSet ordinal, or Kafka's group protocol."""
    s = settings
    if s.collector_assignment == "static":
        replica = s.collector_replica
        if replica is None:
            replica = ordinal_of(os.environ.get("HOSTNAME", "") or socket.gethostname())
        if replica is None or replica >= s.collector_replicas:
            raise ConfigError(
                "ESS_COLLECTOR_ASSIGNMENT=static needs ESS_COLLECTOR_REPLICA below"
                f" ESS_COLLECTOR_REPLICAS={s.collector_replicas} (or a hostname ending in -N)"
            )
        return StaticShare(sites, replica, s.collector_replicas, s.collector_assignment_buckets)
    if s.collector_assignment == "group":
        return KafkaGroupAssignment(
            sites,
            bootstrap=s.kafka_bootstrap,
            topic=f"{s.topic_prefix}.collector.assignment",
            group_id=s.collector_group_id,
            buckets=s.collector_assignment_buckets,
            replication=s.collector_assignment_replication,
            session_timeout_s=s.collector_group_session_timeout_s,
            retry=_backoff(s),
        )
    return AllSites(sites)


def _modbus_client(endpoint: EndpointConfig) -> ReadOnlyModbusClient:
    return ReadOnlyModbusClient(
        endpoint.host,
        endpoint.port,
        framing=endpoint.framing,
        in_flight=endpoint.requests_in_flight,
        gap_s=endpoint.request_gap_s,
    )


def _limits(endpoint: EndpointConfig, settings: CollectorSettings) -> PollLimits:
    return PollLimits(
        request_timeout_s=endpoint.request_timeout_s or settings.collector_request_timeout_s,
        max_registers=settings.collector_max_registers_per_read,
        gap_fill=settings.collector_gap_fill,
        concurrency=endpoint.requests_in_flight,
    )


def _kafka_producer(settings: CollectorSettings) -> BatchingProducer:
    return BatchingProducer(
        settings.kafka_bootstrap,
        ProducerOptions(
            linger_ms=settings.collector_linger_ms,
            compression=settings.collector_compression,
            client_id="ess-collector",
        ),
    )


def _device(config: DeviceConfig, inventory: Inventory, settings: CollectorSettings) -> Device:
    maps = inventory.register_maps
    register_map = maps[config.register_map] if config.register_map else None
    return Device(config, register_map, _backoff(settings))


def _backoff(settings: CollectorSettings) -> Backoff:
    jitter = random.Random()  # noqa: S311 - jitter, not cryptography
    return Backoff(settings.collector_backoff_initial_s, settings.collector_backoff_max_s, jitter)


def _emitter(
    publisher: SpoolingPublisher, observers: Sequence[ReadingObserver]
) -> Callable[[Reading], None]:
    if not observers:
        return publisher.submit
    watchers = tuple(observers)

    def emit(reading: Reading) -> None:
        publisher.submit(reading)
        for observe in watchers:
            observe(reading)

    return emit
