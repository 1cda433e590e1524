"""The control topic as the gap detector and `essctl replay --submit` use it: publish a
replay request, then follow the sinks' `ReplayStatus` answers.

`StatusTail` is group-less (it commits nothing, so no consumer group shows up
for it) and starts at the end of the topic: it sees what is answered after it
started, which is all a requester waits for. Messages it cannot read are
skipped (see `decode_control`), never guessed at.
"""

from __future__ import annotations

from typing import Self

from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import assign_topics, offset_reader
from ess_common.replay import (
    ControlDecodeError,
    ReplayRequest,
    ReplayStatus,
    decode_control,
    encode_control,
)
from ess_common.topics import replay_topic


async def publish_request(
    producer: ReadingProducer, topic_prefix: str, request: ReplayRequest
) -> None:
    """Publish `request` keyed by its cluster (so that cluster's sink gets them in order)."""
    ack = await producer.send_raw(
        replay_topic(topic_prefix), encode_control(request), request.cluster.encode()
    )
    await ack


class StatusTail:
    def __init__(self, bootstrap: str, topic_prefix: str, client_id: str) -> None:
        self.topic = replay_topic(topic_prefix)
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._consumer = offset_reader(bootstrap, client_id=client_id)
        self._started = False

    async def start(self) -> None:
        """Start (again: a failed or stopped client is replaced by a new one)."""
        await self.stop()
        self._consumer = offset_reader(self._bootstrap, client_id=self._client_id)
        self._started = True  # so that stop() closes a half-started client
        await self._consumer.start()
        partitions = await assign_topics(self._consumer, [self.topic])
        await self._consumer.seek_to_end(*partitions)

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def statuses(
        self, timeout_ms: int = 0, request_id: str | None = None
    ) -> list[ReplayStatus]:
        """Statuses that arrived since the last call (of `request_id` only, if given)."""
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms)
        found: list[ReplayStatus] = []
        for records in fetched.values():
            for record in records:
                try:
                    message = decode_control(record.value or b"")
                except ControlDecodeError:
                    continue
                if isinstance(message, ReplayStatus) and request_id in (None, message.request_id):
                    found.append(message)
        return found
