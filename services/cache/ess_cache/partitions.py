"""Steering the Kafka consumer: stay in the group while waiting, and rewind after a rebuild.

While Redis is away or a rebuild runs, the cache takes no records but keeps
polling with every partition paused, so the group does not evict it (and
its memory does not grow). After a rebuild every owned partition is moved
back to the offset the rebuild cluster's sink group had committed when the
rebuild started (everything before it is in SQL, so in the rebuilt bitmaps);
a partition that group never committed goes back to the first offset at or
after `from_slot` (the window's start). Never forward past unprocessed
records, never before the window; the offsets are committed at once (only
for partitions still owned), so a crash during the catch-up cannot skip them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import TopicPartition

from ess_cache.ports import Consumer
from ess_cache.rewind import RewindTarget

log = logging.getLogger(__name__)


class PartitionControl:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    async def keepalive(self, seconds: float) -> None:
        """Poll for `seconds` with all partitions paused; anything fetched is put back."""
        await self.consumer.hold(None, timeout_ms=int(seconds * 1000))

    def resume_all(self) -> None:
        self.consumer.resume(self.consumer.assignment())

    async def rewind(
        self, target: RewindTarget, held_first: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int] | None:
        """Seek owned partitions back to `target`; None when nothing is assigned yet."""
        assigned = sorted(self.consumer.assignment())
        if not assigned:
            return None
        targets = await self.consumer.offsets_at_time(assigned, target.from_slot * 1000)
        for tp in assigned:
            if tp in target.offsets:  # what the sink committed, but not before the window
                targets[tp] = max(targets[tp], target.offsets[tp])
            if await self.consumer.committed(tp) is not None:
                targets[tp] = min(targets[tp], await self.consumer.position(tp))
            if tp in held_first:
                targets[tp] = min(targets[tp], held_first[tp])
        self.consumer.seek(targets)
        if not await self.consumer.commit_next(targets):
            log.warning("could not commit the rewound offsets; they apply anyway")
        return targets
