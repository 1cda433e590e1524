"""The sink service: consume, decode, write one transaction, then commit offsets.

Checkpoint order (as in quix-streams): write the batch to the database and
commit that transaction, then produce its poison messages to the DLQ and wait
for their acks, then commit offsets (explicitly, only for partitions still
owned). A crash anywhere before the offset commit replays the batch; the
upsert absorbs it. Each lane does this through its own `Checkpoint`
(`ess_sink.checkpoint`).

The work is split into lanes (`ess_sink.lane`): each owns a fixed share of the
partitions and a database connection, and runs its own fetch -> decode ->
write -> commit pipeline, so the database stays busy while Python decodes.
Database outages, pausing and graceful stop are handled per lane; see there
and in `ess_sink.store`. This module holds the loop and health only; the
adapters are built in `ess_sink.bootstrap`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from aiokafka.errors import KafkaError

from ess_common.http import Health
from ess_common.kafka import OffsetCommittingConsumer, ReadingProducer
from ess_sink.lag import LagMonitor, is_stalled
from ess_sink.lane import Lane
from ess_sink.metrics import SinkMetrics
from ess_sink.replay_worker import ReplayWorker
from ess_sink.settings import SinkSettings
from ess_sink.store import BatchAbandonedError, ClusterStore

log = logging.getLogger(__name__)


class Companion(Protocol):
    """A task the sink runs beside its lanes until stopped."""

    async def run(self, stop: asyncio.Event) -> None: ...


class SinkService:
    def __init__(
        self,
        settings: SinkSettings,
        *,
        consumer: OffsetCommittingConsumer,
        dlq_producer: ReadingProducer,
        stores: Sequence[ClusterStore],
        lanes: Sequence[Lane],
        lag: LagMonitor,
        replays: ReplayWorker,
        metrics: SinkMetrics,
        companions: Sequence[Companion] = (),
    ) -> None:
        """`stores[i]` is the database connection of `lanes[i]`; `stores[0]` migrates."""
        self.settings = settings
        self.cluster = settings.sink_cluster
        self.name = f"sink-{settings.sink_cluster}"
        self.consumer = consumer
        self.dlq_producer = dlq_producer  # the lanes' `DeadLetters` produce through it
        self.stores = stores
        self.lanes = lanes
        self.lag = lag
        self.replays = replays  # serves ess.control.replay for this cluster
        self.metrics = metrics
        self.companions = companions  # e.g. the fleet registry follower: run beside the lanes

    @property
    def paused(self) -> bool:
        """Some lane has paused its partitions because its database connection is down."""
        return any(lane.paused for lane in self.lanes)

    # -- health -----------------------------------------------------------------------------

    def health(self) -> Health:
        """Not live when a lane has messages waiting and committed nothing for `stall_s`,
        or when the replay worker keeps failing (`ReplayWorker.health`)."""
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
        up = all(store.available for store in self.stores)
        replays = self.replays.health()
        return Health(
            ok=not stalled and replays.ok,
            detail={
                "cluster": self.cluster,
                "lag": self.lag.total,
                "seconds_since_commit": round(now - max(x.last_commit for x in self.lanes), 1),
                "database": "up" if up else "down",
                "stalled_lanes": stalled,
                **replays.detail,
            },
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        try:
            report = await self.stores[0].open(
                stop, s.policies if s.sink_migrate_on_start else None
            )
            for store in self.stores[1:]:
                await store.open(stop, None)
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
            async with self.consumer, self.dlq_producer:
                watcher = asyncio.create_task(self._watch_lag(), name=f"{self.name}.lag")
                replays = asyncio.create_task(self.replays.run(stop), name=f"{self.name}.replay")
                extra = [asyncio.create_task(c.run(stop)) for c in self.companions]
                try:
                    await asyncio.gather(*(lane.run(stop) for lane in self.lanes))
                finally:
                    watcher.cancel()
                    replays.cancel()  # an unfinished replay is not committed: served again
                    for task in extra:
                        task.cancel()
                    await asyncio.wait({watcher, replays, *extra})
        finally:
            await self._close_stores()

    async def _close_stores(self) -> None:
        for store in self.stores:
            await store.close()

    async def _watch_lag(self) -> None:
        while True:
            try:
                await self.lag.refresh()
            except (KafkaError, OSError, TimeoutError) as exc:  # best effort, never fatal
                log.debug("lag refresh failed: %s", exc)
            await asyncio.sleep(self.settings.sink_lag_interval_s)
