"""The detector's Kafka adapters: telemetry slots in, replay requests out, retention.

`SlotFeed` reads the telemetry topics with its own group id (its committed
offsets only show its lag in `essctl offsets`; they are not its memory). At
start it seeks every partition to the positions of the state it saved in the
clusters (`state`), or, without one, to `now - rebuild horizon` by time and
re-reads from there. It is caught up with a moment once its position passed
the end offsets seen at that moment (continuous traffic never gives a lag of
exactly 0). `SinkProgress` reads how far each cluster's sink group has
committed, for lag-aware loss. `ReplayPublisher` puts
requests on the control topic (the sinks' answers come back through
`ess_common.control_topic.StatusTail`); `TopicRetention` tells whether Kafka
still holds a window, i.e. whether a replay can help at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ess_common.clusters import Cluster
from ess_common.control_topic import publish_request
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import (
    assign_topics,
    group_committed,
    kafka_covers,
    offset_bounds,
    offset_reader,
    offsets_at,
)
from ess_common.model import Table
from ess_common.replay import ReplayRequest
from ess_common.topics import telemetry_topic
from ess_gapdetector.metrics import GapMetrics
from ess_loss.slots import SlotTracker, record_slot

log = logging.getLogger(__name__)


def read_slots(
    tracker: SlotTracker, table: Table, records: list[Any], now: float, partition: int = 0
) -> tuple[int, int]:
    """Feed records of one table into the tracker; returns (read, unreadable)."""
    unreadable = 0
    where: list[tuple[str, int, int]] = []
    for record in records:
        found = record_slot(tracker, table, record.key, record.value)
        if found is None:
            unreadable += 1
            continue
        tracker.add(table, *found, now)
        where.append((found[0], found[1], record.offset))
    tracker.note_offsets(table, partition, where)
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
        self._bootstrap = bootstrap
        self._group_id = group_id
        self.consumer = self._new_consumer()
        self.partitions: list[TopicPartition] = []
        self.caught_up_at = 0.0
        self.lag = -1
        self._started = False
        self._marks: list[tuple[float, dict[TopicPartition, int]]] = []  # (asked at, ends)

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            client_id="gapdetector",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )

    async def start(
        self, rebuild_from: datetime, positions: Mapping[str, int] | None = None
    ) -> None:
        """Seek to `positions` ("topic:partition" -> offset, from the saved state) where
        they are still in the log, else to `rebuild_from` by time."""
        await self.stop()
        self.consumer = self._new_consumer()  # a stopped client cannot be started again
        self._started = True
        await self.consumer.start()
        self.partitions = await assign_topics(self.consumer, list(self._tables))
        starts = await offsets_at(self.consumer, self.partitions, rebuild_from)
        begins, ends = await offset_bounds(self.consumer, self.partitions)
        saved = positions or {}
        resumed = 0
        to_read = 0
        for tp in self.partitions:
            at = saved.get(f"{tp.topic}:{tp.partition}")
            if at is not None and begins[tp] <= at <= ends[tp]:
                resumed += 1
            else:
                first = starts[tp]
                at = ends[tp] if first is None else first
            self.consumer.seek(tp, at)
            to_read += ends[tp] - at
        log.info(
            "reading telemetry: %d of %d partitions resume from the saved state, the rest"
            " from %s; %d messages behind",
            resumed,
            len(self.partitions),
            rebuild_from.isoformat(),
            to_read,
            extra={"messages_to_read": to_read},
        )

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.consumer.stop()

    async def positions(self) -> dict[str, int]:
        return {
            f"{tp.topic}:{tp.partition}": await self.consumer.position(tp) for tp in self.partitions
        }

    async def poll(self, timeout_ms: int) -> int:
        fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self._poll_records)
        now = time.time()
        total = 0
        for tp, records in fetched.items():
            table = self._tables[tp.topic]
            read, unreadable = read_slots(self._tracker, table, records, now, tp.partition)
            total += read
            self._metrics.kafka_messages.labels(table).inc(read)
            if unreadable:
                self._metrics.unreadable.labels(table).inc(unreadable)
        return total

    async def check_caught_up(self) -> int:
        """Note the end offsets now; `caught_up_at` is the latest moment whose end
        offsets every position has passed (not "lag == 0", which continuous traffic
        may never show)."""
        asked_at = time.time()
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        self._marks.append((asked_at, ends))
        positions = {tp: await self.consumer.position(tp) for tp in self.partitions}
        self.lag = sum(max(0, ends[tp] - positions[tp]) for tp in self.partitions)
        self._metrics.kafka_lag.set(self.lag)
        while self._marks and all(
            positions[tp] >= end for tp, end in self._marks[0][1].items() if tp in positions
        ):
            self.caught_up_at = max(self.caught_up_at, self._marks.pop(0)[0])
        del self._marks[:-1000]  # bounded: far behind, the oldest marks are dropped
        return self.lag

    async def commit(self) -> None:
        """Commit positions so `essctl offsets` shows how far the detector is."""
        positions = {tp: await self.consumer.position(tp) for tp in self.partitions}
        await self.consumer.commit(positions)


class SinkProgress:
    """How far each cluster's sink group has committed, per table and partition."""

    def __init__(self, bootstrap: str, topic_prefix: str, groups: Mapping[Cluster, str]) -> None:
        self._bootstrap = bootstrap
        self._prefix = topic_prefix
        self.groups = dict(groups)
        self._admin: AIOKafkaAdminClient | None = None

    async def committed(self, table: Table) -> dict[Cluster, dict[int, int]]:
        """cluster -> partition -> committed offset of its sink group on `table`'s topic
        (a partition the group never committed is absent: nothing of it consumed)."""
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="gapdetector")
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        topic = telemetry_topic(table, self._prefix)
        out: dict[Cluster, dict[int, int]] = {}
        try:
            for cluster, group in self.groups.items():
                out[cluster] = await group_committed(self._admin, group, topic)
        except BaseException:
            await self.close()
            raise
        return out

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()


class ReplayPublisher:
    def __init__(self, producer: Callable[[], ReadingProducer], topic_prefix: str) -> None:
        self._new_producer = producer
        self._producer = producer()
        self._prefix = topic_prefix

    async def start(self) -> None:
        """Start (again: a failed or stopped client is replaced by a new one)."""
        await self._producer.stop()
        self._producer = self._new_producer()
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
