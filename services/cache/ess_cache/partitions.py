"""Steering the Kafka consumer: stay in the group while waiting, and rewind after a rebuild.

While Redis is away or a rebuild runs, the cache takes no records but keeps
polling with every partition paused, so the group does not evict it (and
its memory does not grow). After a rebuild every owned partition is moved
back to the first offset at or after `rewind_to` (never forward past
unprocessed records) and that offset is committed at once, so a crash
during the catch-up cannot skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class PartitionControl:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def keepalive(self, seconds: float) -> None:
        """Poll for `seconds` with all partitions paused; anything fetched is put back."""
        self._pause_all()
        fetched = await self.consumer.getmany(timeout_ms=int(seconds * 1000))
        for tp, records in fetched.items():
            if records:
                self.consumer.seek(tp, records[0].offset)
        self._pause_all()

    def _pause_all(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(*assigned)

    def resume_all(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.resume(*assigned)

    async def rewind(
        self, to_slot: int, held_first: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int] | None:
        """Seek owned partitions back to `to_slot`; None when nothing is assigned yet."""
        assigned = list(self.consumer.assignment())
        if not assigned:
            return None
        found = await self.consumer.offsets_for_times({tp: to_slot * 1000 for tp in assigned})
        ends = await self.consumer.end_offsets(assigned)
        targets: dict[TopicPartition, int] = {}
        for tp in assigned:
            hit = found.get(tp)
            target = hit.offset if hit is not None else ends[tp]
            if await self.consumer.committed(tp) is not None:
                target = min(target, await self.consumer.position(tp))
            if tp in held_first:
                target = min(target, held_first[tp])
            self.consumer.seek(tp, target)
            targets[tp] = target
        try:
            await self.consumer.commit(targets)
        except KafkaError as exc:
            log.warning("could not commit the rewound offsets (%s); they apply anyway", exc)
        return targets
