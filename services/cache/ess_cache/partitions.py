"""Steering the Kafka consumer: stay in the group while waiting, and rewind after a rebuild.

While Redis is away or a rebuild runs, the cache takes no records but keeps
polling with every partition paused, so the group does not evict it (and
its memory does not grow). After a rebuild every owned partition is moved
back to the first offset at or after `rewind_to` (never forward past
unprocessed records) and that offset is committed at once (only for
partitions still owned), so a crash during the catch-up cannot skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import TopicPartition

from ess_cache.ports import Consumer

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
        self, to_slot: int, held_first: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int] | None:
        """Seek owned partitions back to `to_slot`; None when nothing is assigned yet."""
        assigned = sorted(self.consumer.assignment())
        if not assigned:
            return None
        targets = await self.consumer.offsets_at_time(assigned, to_slot * 1000)
        for tp in assigned:
            if await self.consumer.committed(tp) is not None:
                targets[tp] = min(targets[tp], await self.consumer.position(tp))
            if tp in held_first:
                targets[tp] = min(targets[tp], held_first[tp])
        self.consumer.seek(targets)
        if not await self.consumer.commit_next(targets):
            log.warning("could not commit the rewound offsets; they apply anyway")
        return targets
