"""The sink service: consume, decode, write one transaction, then commit offsets.

Checkpoint order (as in quix-streams): write the batch to the database and
commit that transaction, then produce its poison messages to the DLQ and wait
for their acks, then commit offsets (explicitly, only for partitions still
owned). A crash anywhere before the offset commit replays the batch; the
upsert absorbs it.

The work is split into lanes (`ess_sink.lane`): each owns a fixed share of the
partitions and a database connection, and runs its own fetch -> decode ->
write -> commit pipeline, so the database stays busy while Python decodes.
Database outages, pausing and graceful stop are handled per lane; see there
and in `ess_sink.store`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from ess_common.backoff import Backoff
from ess_common.db import DbTimeouts
from ess_common.http import Health
from ess_common.kafka import OffsetCommittingConsumer
from ess_common.logs import error_line
from ess_common.topics import telemetry_topic
from ess_sink.consume import DB_REJECTED, BatchDecoder, DecodedBatch, Poison, SlotBounds
from ess_sink.dead_letters import DeadLetters
from ess_sink.lag import LagMonitor, is_stalled
from ess_sink.lane import Lane
from ess_sink.metrics import SinkMetrics
from ess_sink.replay_worker import ReplayWorker
from ess_sink.settings import SinkSettings
from ess_sink.store import BatchAbandonedError, ClusterStore

log = logging.getLogger(__name__)


class SinkService:
    def __init__(self, settings: SinkSettings, registry: CollectorRegistry) -> None:
        s = settings
        self.settings = s
        self.cluster = s.sink_cluster
        self.name = f"sink-{s.sink_cluster}"
        self.metrics = SinkMetrics(registry)
        self.consumer = OffsetCommittingConsumer(
            s.kafka_bootstrap,
            s.group_id,
            [telemetry_topic(t, s.topic_prefix) for t in s.sink_tables],
            client_id=self.name,
            group_instance_id=s.sink_group_instance_id,
            session_timeout_ms=int(s.sink_session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.sink_session_timeout_s * 1000 / 3),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.dlq = DeadLetters(s.kafka_bootstrap, s.topic_prefix, s.sink_cluster, self.metrics)
        self.replays = ReplayWorker(s, registry)  # serves ess.control.replay for this cluster
        self.lanes = [
            Lane(
                i,
                s.sink_db_connections,
                self.consumer,
                ClusterStore(
                    s.sink_dsn,
                    DbTimeouts(s.sink_db_connect_timeout_s, s.sink_db_command_timeout_s),
                    f"{self.name}-{i}",
                    Backoff(s.sink_retry_initial_s, s.sink_retry_max_s),
                    self._count_db_error,
                ),
                self._count_paused,
            )
            for i in range(s.sink_db_connections)
        ]
        self.decoder = BatchDecoder(
            s.topic_prefix,
            SlotBounds(
                max_future=timedelta(seconds=s.sink_max_future_s),
                max_age=timedelta(seconds=s.sink_max_age_s),
            ),
        )
        self.lag = LagMonitor(self.consumer, self.metrics.lag, self.cluster, s.topic_prefix)

    @property
    def paused(self) -> bool:
        """Some lane has paused its partitions because its database connection is down."""
        return any(lane.paused for lane in self.lanes)

    # -- health -----------------------------------------------------------------------------

    def health(self) -> Health:
        """Not live when a lane has messages waiting and committed nothing for `stall_s`."""
        now = time.monotonic()
        stalled = [
            lane.index
            for lane in self.lanes
            if is_stalled(
                sum(self.lag.lags.get(tp, 0) for tp in lane.partitions()),
                now - lane.last_commit,
                self.settings.sink_stall_s,
            )
        ]
        up = all(lane.store.available for lane in self.lanes)
        return Health(
            ok=not stalled,
            detail={
                "cluster": self.cluster,
                "lag": self.lag.total,
                "seconds_since_commit": round(now - max(x.last_commit for x in self.lanes), 1),
                "database": "up" if up else "down",
                "stalled_lanes": stalled,
            },
        )

    def _count_db_error(self, kind: str) -> None:
        self.metrics.db_errors.labels(self.cluster, kind).inc()

    def _count_paused(self) -> None:
        paused = len(self.consumer.paused())
        self.metrics.paused_partitions.labels(self.cluster).set(paused)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        try:
            report = await self.lanes[0].store.open(
                stop, s.policies if s.sink_migrate_on_start else None
            )
            for lane in self.lanes[1:]:
                await lane.store.open(stop, None)
        except BatchAbandonedError:
            log.info("stopped before the database was reachable")
            await self._close_stores()
            return
        if report is not None:
            log.info(
                "schema at version %d (timescaledb %s)",
                report.version,
                report.timescaledb or "absent",
            )
        try:
            async with self.consumer, self.dlq:
                watcher = asyncio.create_task(self._watch_lag(), name=f"{self.name}.lag")
                replays = asyncio.create_task(self.replays.run(stop), name=f"{self.name}.replay")
                try:
                    await asyncio.gather(
                        *(
                            lane.run(
                                stop,
                                self.decoder,
                                self.checkpoint,
                                s.sink_batch_max_rows,
                                s.sink_batch_max_wait_s,
                            )
                            for lane in self.lanes
                        )
                    )
                finally:
                    watcher.cancel()
                    replays.cancel()  # an unfinished replay is not committed: served again
                    await asyncio.wait({watcher, replays})
        finally:
            await self._close_stores()

    async def _close_stores(self) -> None:
        for lane in self.lanes:
            await lane.store.close()

    async def checkpoint(self, batch: DecodedBatch, lane: Lane, stop: asyncio.Event) -> None:
        """Write, dead-letter, commit: one batch of one lane."""
        started = time.perf_counter()
        written = await lane.store.write(
            {table: part.rows for table, part in batch.tables.items()}, stop, lane
        )
        for table, result in written.results.items():
            self.metrics.rows_written.labels(self.cluster, table).inc(result.inserted)
            self.metrics.duplicates.labels(self.cluster, table).inc(result.duplicates)
        refused = [
            Poison(batch.tables[r.table].origins[r.index], DB_REJECTED, error_line(r.error))
            for r in written.rejected
        ]
        await self.dlq.send([*batch.poison, *refused])
        if await self.consumer.commit_processed(batch.last_offsets):
            owned = self.consumer.owned
            self.lag.committed({tp: o + 1 for tp, o in batch.last_offsets.items() if tp in owned})
            self.metrics.batches.labels(self.cluster).inc()
            self.metrics.last_commit.labels(self.cluster).set_to_current_time()
            lane.last_commit = time.monotonic()
        else:
            self.metrics.commit_failures.labels(self.cluster).inc()
        self.metrics.batch_seconds.labels(self.cluster).observe(time.perf_counter() - started)

    async def _watch_lag(self) -> None:
        while True:
            try:
                await self.lag.refresh()
            except (KafkaError, OSError, TimeoutError) as exc:  # best effort, never fatal
                log.debug("lag refresh failed: %s", exc)
            await asyncio.sleep(self.settings.sink_lag_interval_s)
