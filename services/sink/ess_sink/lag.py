"""Consumer lag per partition, and the liveness rule built on it.

Lag is measured against the broker's end offsets (a ListOffsets request every
few seconds), not the fetch responses, so it keeps growing while partitions
are paused. The position is the offset this sink committed last, or the
group's committed offset for a partition it has not committed yet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import TopicPartition
from prometheus_client import Gauge

from ess_common.kafka import OffsetCommittingConsumer
from ess_common.topics import table_of_topic

log = logging.getLogger(__name__)


def partition_lags(
    ends: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Messages after each position; a partition without a known position is left out."""
    return {tp: max(0, end - positions[tp]) for tp, end in ends.items() if tp in positions}


def is_stalled(total_lag: int, seconds_since_commit: float, stall_s: float) -> bool:
    """Not live: messages are waiting and nothing was committed for `stall_s`."""
    return total_lag > 0 and seconds_since_commit > stall_s


class LagMonitor:
    def __init__(
        self, consumer: OffsetCommittingConsumer, gauge: Gauge, cluster: str, prefix: str
    ) -> None:
        self._consumer = consumer
        self._gauge = gauge
        self._cluster = cluster
        self._prefix = prefix
        self._positions: dict[TopicPartition, int] = {}
        self._labelled: set[tuple[str, str]] = set()
        self.lags: dict[TopicPartition, int] = {}  # as of the last refresh
        self.total = 0

    def committed(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        """Record offsets this sink committed (the next offset to read, per partition)."""
        self._positions.update(next_offsets)

    async def refresh(self) -> int:
        assigned = sorted(self._consumer.assignment())
        for tp in set(self._positions) - set(assigned):
            del self._positions[tp]  # revoked: the next owner's commits are not ours to know
        ends: dict[TopicPartition, int] = (
            await self._consumer.end_offsets(assigned) if assigned else {}
        )
        for tp in assigned:
            if tp not in self._positions:
                committed = await self._consumer.committed(tp)
                if committed is None:  # the group never committed here: it starts at the beginning
                    committed = (await self._consumer.beginning_offsets([tp]))[tp]
                self._positions[tp] = committed
        lags = partition_lags(ends, self._positions)
        labelled: set[tuple[str, str]] = set()
        for tp, lag in lags.items():
            labels = (str(table_of_topic(tp.topic, self._prefix)), str(tp.partition))
            self._gauge.labels(self._cluster, *labels).set(lag)
            labelled.add(labels)
        for labels in self._labelled - labelled:
            self._gauge.remove(self._cluster, *labels)
        self._labelled = labelled
        self.lags = lags
        self.total = sum(lags.values())
        return self.total
