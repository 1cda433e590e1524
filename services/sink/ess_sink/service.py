"""The sink service: consume, decode, write one transaction, then commit offsets.

Checkpoint order (as in quix-streams): flush to the database, then produce
poison messages to the DLQ and wait for their acks, then commit offsets. A
crash anywhere before the commit replays the batch; the upsert absorbs it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from prometheus_client import CollectorRegistry

from ess_common.db import DbTimeouts, connect
from ess_common.http import Health
from ess_common.kafka import OffsetCommittingConsumer, ReadingProducer
from ess_common.topics import dlq_topic, telemetry_topic
from ess_sink.consume import DecodedBatch, decode_batch
from ess_sink.metrics import SinkMetrics
from ess_sink.schema import migrate
from ess_sink.settings import SinkSettings
from ess_sink.writer import write_rows

log = logging.getLogger(__name__)


class SinkService:
    def __init__(self, settings: SinkSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.name = f"sink-{settings.sink_cluster}"
        self.metrics = SinkMetrics(registry)
        self.consumer = OffsetCommittingConsumer(
            settings.kafka_bootstrap,
            settings.group_id,
            [telemetry_topic(t, settings.topic_prefix) for t in settings.sink_tables],
            client_id=self.name,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.dlq = ReadingProducer(settings.kafka_bootstrap, settings.topic_prefix)
        self._conn: asyncpg.Connection | None = None
        self._last_progress = time.monotonic()

    def health(self) -> Health:
        idle = time.monotonic() - self._last_progress
        return Health(
            ok=self._conn is not None and not self._conn.is_closed(),
            detail={
                "cluster": self.settings.sink_cluster,
                "seconds_since_progress": round(idle, 1),
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        self._conn = await connect(
            s.dsn,
            timeouts=DbTimeouts(s.sink_db_connect_timeout_s, s.sink_db_command_timeout_s),
            application_name=self.name,
        )
        try:
            if s.sink_migrate_on_start:
                report = await migrate(self._conn)
                log.info(
                    "schema at version %d (timescaledb %s)",
                    report.version,
                    report.timescaledb or "absent",
                )
            async with self.consumer, self.dlq:
                while not stop.is_set():
                    fetched = await self.consumer.getmany(
                        timeout_ms=int(s.sink_batch_max_wait_s * 1000),
                        max_records=s.sink_batch_max_rows,
                    )
                    batch = decode_batch(fetched, s.topic_prefix)
                    if batch.last_offsets:
                        await self.process(batch)
        finally:
            await self._conn.close()

    async def process(self, batch: DecodedBatch) -> None:
        assert self._conn is not None
        cluster = self.settings.sink_cluster
        started = time.perf_counter()
        for table, rows in batch.rows.items():
            result = await write_rows(self._conn, table, rows)
            self.metrics.rows_written.labels(cluster, table).inc(result.inserted)
            self.metrics.duplicates.labels(cluster, table).inc(result.duplicates)
        await self._dead_letter(batch)
        if await self.consumer.commit_processed(batch.last_offsets):
            self.metrics.batches.labels(cluster).inc()
        else:
            self.metrics.commit_failures.labels(cluster).inc()
        self.metrics.batch_seconds.labels(cluster).observe(time.perf_counter() - started)
        self._last_progress = time.monotonic()

    async def _dead_letter(self, batch: DecodedBatch) -> None:
        acks = []
        for p in batch.poison:
            r = p.record
            headers = [
                ("reason", p.reason.encode()),
                ("detail", p.detail[:500].encode()),
                ("topic", r.topic.encode()),
                ("partition", str(r.partition).encode()),
                ("offset", str(r.offset).encode()),
                ("sink", self.settings.sink_cluster.encode()),
            ]
            acks.append(
                await self.dlq.send_raw(
                    dlq_topic(self.settings.topic_prefix), r.value or b"", r.key, headers
                )
            )
            self.metrics.dlq.labels(self.settings.sink_cluster, p.reason).inc()
            log.warning("dead-lettered %s[%d]@%d: %s", r.topic, r.partition, r.offset, p.reason)
        if acks:
            await asyncio.gather(*acks)
