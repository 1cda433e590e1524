"""Registering what the collector polls in the fleet registry, through Kafka.

At start the collector publishes one record per site (its time zone) and per
device of its inventory (commissioned at its first poll, i.e. now) to the
compacted `<prefix>.fleet.registry` topic; each cluster's sink upserts them
(`ess_tables.registry.register`), which only ever moves `commissioned_at`
earlier, so restarts change nothing. Why Kafka: the on-prem collector needs
no credentials of the cloud database (see `ess_common.fleet_records`). Kafka
being away delays the registration (retried with the shared backoff); it
never stops polling. A device removed from the inventory is not retired here:
an operator does that with `essctl fleet retire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ess_collector.inventory import Inventory
from ess_common.backoff import Backoff, sleep_unless_stopped
from ess_common.fleet_records import DeviceRecord, RegistryRecord, SiteRecord, encode_record
from ess_common.kafka import ProducerOptions, ReadingProducer
from ess_common.model import DeviceId
from ess_common.topics import registry_topic

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact"}


def inventory_records(inventory: Inventory, first_poll: datetime) -> list[RegistryRecord]:
    records: list[RegistryRecord] = []
    for site in inventory.sites:
        records.append(SiteRecord(site=site.id, time_zone=site.time_zone))
        for endpoint in site.endpoints:
            for device in endpoint.devices:
                key = DeviceId.parse(device.id)
                records.append(
                    DeviceRecord(
                        device=device.id,
                        site=key.site,
                        table=key.table,
                        commissioned_at=first_poll,
                        registered_by="collector",
                    )
                )
    return records


async def ensure_registry_topic(bootstrap: str, prefix: str, partitions: int = 3) -> None:
    """Create the compacted registry topic if it is missing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="ess-collector-registry")
    try:
        await admin.start()
        if registry_topic(prefix) not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(registry_topic(prefix), partitions, 1, topic_configs=COMPACTED)]
                )
    finally:
        await admin.close()


class Registrar:
    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        records: Sequence[RegistryRecord],
        backoff: Backoff,
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = topic_prefix
        self.records = list(records)
        self._backoff = backoff
        self.registered = False

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every record (acks awaited), retrying until done or stopped."""
        while not stop.is_set():
            try:
                await self._publish_all()
            except (KafkaError, OSError, TimeoutError) as exc:
                delay = self._backoff.next_delay()
                log.warning("fleet registration not sent yet (%s); retry in %.1fs", exc, delay)
                if await sleep_unless_stopped(stop, delay):
                    return
                continue
            self.registered = True
            log.info("registered %d sites and devices in the fleet registry", len(self.records))
            return

    async def _publish_all(self) -> None:
        await ensure_registry_topic(self._bootstrap, self._prefix)
        producer = ReadingProducer(
            self._bootstrap, self._prefix, ProducerOptions(client_id="ess-collector-registry")
        )
        try:
            await producer.start()
            acks = [
                await producer.send_raw(registry_topic(self._prefix), encode_record(r), r.key)
                for r in self.records
            ]
            await asyncio.gather(*acks)
        finally:
            await producer.stop()


def first_poll_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
