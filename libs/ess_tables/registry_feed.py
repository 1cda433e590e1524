"""Following the fleet registry topic into one cluster (run by each cluster's sink).

Reads `<prefix>.fleet.registry` (compacted: the latest record of every site and
device) with its own group, upserts each batch with `registry.register` in
one transaction, then commits the offsets: a crash replays the batch, which
changes nothing twice. Undecodable records are logged and skipped (nothing is
guessed). Kafka or the database being away is waited out with the shared
backoff; it never stops the sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ess_common.backoff import Backoff, sleep_unless_stopped
from ess_common.db_errors import DB_FAILURES
from ess_common.fleet_records import DeviceRecord, RecordError, SiteRecord, decode_record
from ess_common.logs import error_line
from ess_common.topics import registry_topic
from ess_tables.registry import register

log = logging.getLogger(__name__)

_TOPIC_CHECK_S = 10.0


class RegistryFollower:
    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        group_id: str,
        database: Callable[[], Awaitable[asyncpg.Connection]],
        backoff: Backoff,
    ) -> None:
        self._bootstrap = bootstrap
        self.topic = registry_topic(topic_prefix)
        self.group_id = group_id
        self._database = database
        self._backoff = backoff
        self.applied = 0  # records upserted (for tests and health)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._follow(stop)
            except (KafkaError, OSError, TimeoutError, *DB_FAILURES) as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "fleet registry not followed (%s); retry in %.1fs", error_line(exc), delay
                )
                if await sleep_unless_stopped(stop, delay):
                    return

    async def _follow(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{self.group_id}",
        )
        conn: asyncpg.Connection | None = None
        try:
            await consumer.start()
            while self.topic not in await consumer.topics():  # no collector registered yet
                if await sleep_unless_stopped(stop, _TOPIC_CHECK_S):
                    return
            consumer.subscribe([self.topic])
            conn = await self._database()
            while not stop.is_set():
                fetched: dict[TopicPartition, list[Any]] = await consumer.getmany(
                    timeout_ms=1000, max_records=5000
                )
                if not fetched:
                    continue
                sites: dict[str, SiteRecord] = {}
                devices: dict[str, DeviceRecord] = {}
                for records in fetched.values():
                    for record in records:
                        try:
                            found = decode_record(record.value)
                        except RecordError as exc:
                            log.warning("skipping registry record at %s: %s", record.offset, exc)
                            continue
                        if isinstance(found, SiteRecord):
                            sites[found.site] = found
                        else:
                            devices[found.device] = found
                await register(conn, sites.values(), devices.values())
                await consumer.commit(
                    {tp: records[-1].offset + 1 for tp, records in fetched.items() if records}
                )
                self.applied += len(sites) + len(devices)
                self._backoff.reset()
        finally:
            if conn is not None:
                await conn.close()
            await consumer.stop()
