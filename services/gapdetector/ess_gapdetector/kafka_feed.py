"""The detector's Kafka adapters: telemetry slots in, replay requests out, retention.

`SlotFeed` reads the telemetry topics with its own group id (its committed
offsets only show its lag in `essctl offsets`; they are not its memory). At
start it seeks every partition to `now - rebuild horizon` by time and re-reads
from there, because the slot bitsets live in memory. `ReplayPublisher` puts
requests on the control topic (the sinks' answers come back through
`ess_common.control_topic.StatusTail`); `TopicRetention` tells whether Kafka
still holds a window, i.e. whether a replay can help at all.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ess_common.control_topic import publish_request
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import assign_topics, kafka_covers, offset_reader, offsets_at
from ess_common.model import Table
from ess_common.replay import ReplayRequest
from ess_common.topics import telemetry_topic
from ess_gapdetector.metrics import GapMetrics
from ess_loss.slots import SlotTracker, record_slot

log = logging.getLogger(__name__)


def read_slots(
    tracker: SlotTracker, table: Table, records: list[Any], now: float
) -> tuple[int, int]:
    """Feed records of one table into the tracker; returns (read, unreadable)."""
    unreadable = 0
    for record in records:
        found = record_slot(tracker, table, record.key, record.value)
        if found is None:
            unreadable += 1
            continue
        tracker.add(table, *found, now)
    return len(records), unreadable


class SlotFeed:
    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        group_id: str,
        *,
        tables: tuple[Table, ...],
        tracker: SlotTracker,
        metrics: GapMetrics,
        poll_records: int = 20_000,
    ) -> None:
        self._tables = {telemetry_topic(t, topic_prefix): t for t in tables}
        self._tracker = tracker
        self._metrics = metrics
        self._poll_records = poll_records
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id="gapdetector",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self.partitions: list[TopicPartition] = []
        self.caught_up_at = 0.0
        self.lag = -1
        self._started = False

    async def start(self, rebuild_from: datetime) -> None:
        await self.consumer.start()
        self._started = True
        self.partitions = await assign_topics(self.consumer, list(self._tables))
        starts = await offsets_at(self.consumer, self.partitions, rebuild_from)
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        for tp in self.partitions:
            first = starts[tp]
            self.consumer.seek(tp, ends[tp] if first is None else first)
        log.info(
            "reading telemetry from %s to rebuild the windows still open",
            rebuild_from.isoformat(),
            extra={"messages_to_read": sum(ends[tp] - (starts[tp] or ends[tp]) for tp in ends)},
        )

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.consumer.stop()

    async def poll(self, timeout_ms: int) -> int:
        fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self._poll_records)
        now = time.time()
        total = 0
        for tp, records in fetched.items():
            table = self._tables[tp.topic]
            read, unreadable = read_slots(self._tracker, table, records, now)
            total += read
            self._metrics.kafka_messages.labels(table).inc(read)
            if unreadable:
                self._metrics.unreadable.labels(table).inc(unreadable)
        return total

    async def check_caught_up(self) -> int:
        """Compare positions with end offsets; remembers when the lag was last zero."""
        asked_at = time.time()
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        lag = 0
        for tp in self.partitions:
            lag += max(0, ends[tp] - await self.consumer.position(tp))
        self.lag = lag
        self._metrics.kafka_lag.set(lag)
        if lag == 0:
            self.caught_up_at = asked_at
        return lag

    async def commit(self) -> None:
        """Commit positions so `essctl offsets` shows how far the detector is."""
        positions = {tp: await self.consumer.position(tp) for tp in self.partitions}
        await self.consumer.commit(positions)


class ReplayPublisher:
    def __init__(self, producer: ReadingProducer, topic_prefix: str) -> None:
        self._producer = producer
        self._prefix = topic_prefix

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, request: ReplayRequest) -> None:
        await publish_request(self._producer, self._prefix, request)


class TopicRetention:
    def __init__(self, bootstrap: str, topic_prefix: str) -> None:
        self._bootstrap = bootstrap
        self._prefix = topic_prefix

    async def covers(self, table: Table, since: datetime) -> bool:
        """Whether Kafka still holds every record of `table` written since `since`."""
        reader = offset_reader(self._bootstrap, client_id="gapdetector-coverage")
        await reader.start()
        try:
            partitions = await assign_topics(reader, [telemetry_topic(table, self._prefix)])
            return await kafka_covers(reader, partitions, since)
        finally:
            await reader.stop()


def rebuild_start(horizon_s: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=horizon_s)
