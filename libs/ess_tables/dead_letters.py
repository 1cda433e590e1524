"""The dead-letter topic, and the write path every telemetry writer shares.

A dead letter is the original value and key with headers: `reason` (bounded
code), `detail` (first 500 characters), `topic`, `partition`, `offset` (where
the message came from), `sink` (the cluster whose path refused it) and `via`
(`sink`, `replay`: which path). `essctl dlq` lists, shows and re-drives them.

`write_then_dead_letter` is the one write path of the sink's live batches and
of replays: write the rows (the writer isolates rows the database refuses),
then produce the poison and the refused rows to the DLQ and wait for Kafka's
acks. A produce that fails is retried in-process with the shared backoff; if
stop is requested meanwhile `DeadLettersNotSentError` is raised and the caller
commits nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka.errors import KafkaError

from ess_common.backoff import Backoff, sleep_unless_stopped
from ess_common.kafka import RawSender
from ess_common.logs import error_line
from ess_common.model import Table
from ess_common.topics import dlq_topic
from ess_tables.batch import DB_REJECTED, DecodedBatch, Poison
from ess_tables.writer import BatchWrite

log = logging.getLogger(__name__)

Via = str  # "sink" | "replay"


class DeadLettersNotSentError(Exception):
    """Stop was requested while the DLQ could not be reached; nothing may be committed."""


class DeadLetterSink(Protocol):
    """Returns once Kafka acknowledged every message."""

    async def send(self, poison: Sequence[Poison], stop: asyncio.Event) -> None: ...


def dlq_headers(poison: Poison, cluster: str, via: Via = "sink") -> list[tuple[str, bytes]]:
    r = poison.record
    return [
        ("reason", poison.reason.encode()),
        ("detail", poison.detail[:500].encode()),
        ("topic", str(r.topic).encode()),
        ("partition", str(r.partition).encode()),
        ("offset", str(r.offset).encode()),
        ("sink", cluster.encode()),
        ("via", via.encode()),
    ]


class DeadLetters:
    """Produces dead letters through `producer` (started and stopped by its owner)."""

    def __init__(
        self,
        producer: RawSender,
        prefix: str,
        cluster: str,
        *,
        backoff: Backoff,
        count: Callable[[str, int], None] = lambda reason, n: None,
        count_retry: Callable[[], None] = lambda: None,
        via: Via = "sink",
    ) -> None:
        """`count(reason, n)`: n messages of `reason` acknowledged; `count_retry()`: a
        produce failed and is tried again."""
        self._producer = producer
        self._topic = dlq_topic(prefix)
        self._cluster = cluster
        self._backoff = backoff
        self._count = count
        self._count_retry = count_retry
        self._via = via

    async def send(self, poison: Sequence[Poison], stop: asyncio.Event) -> None:
        """Produce every message and wait for Kafka's acks, retrying until stop."""
        if not poison:
            return
        while True:
            try:
                await self._produce(poison)
            except KafkaError as exc:
                self._count_retry()
                delay = self._backoff.next_delay()
                log.warning(
                    "dead letters not acknowledged (%s); retrying in %.1fs", error_line(exc), delay
                )
                if await sleep_unless_stopped(stop, delay):
                    raise DeadLettersNotSentError("stopping with the DLQ unreachable") from exc
                continue
            self._backoff.reset()
            break
        reasons = Counter(p.reason for p in poison)
        for reason, n in reasons.items():
            self._count(reason, n)
        first = poison[0]
        log.warning(
            "dead-lettered %d messages %s; first %s[%d]@%d: %s",
            len(poison),
            dict(reasons),
            first.record.topic,
            first.record.partition,
            first.record.offset,
            first.detail[:200],
        )

    async def _produce(self, poison: Sequence[Poison]) -> None:
        acks: list[asyncio.Future[Any]] = []
        for p in poison:
            headers = dlq_headers(p, self._cluster, self._via)
            acks.append(
                await self._producer.send_raw(
                    self._topic, p.record.value or b"", p.record.key, headers
                )
            )
        await asyncio.gather(*acks)


WriteRows = Callable[[Mapping[Table, Sequence[tuple[Any, ...]]]], Awaitable[BatchWrite]]


async def write_then_dead_letter(
    batch: DecodedBatch, write: WriteRows, dead_letters: DeadLetterSink, stop: asyncio.Event
) -> BatchWrite:
    """Write `batch`'s rows, then dead-letter its poison and the refused rows (acks awaited).

    Returns the write's result; `rejected` rows are already in the DLQ then.
    """
    written = await write(batch.rows)
    refused = [
        Poison(batch.tables[r.table].origins[r.index], DB_REJECTED, error_line(r.error))
        for r in written.rejected
    ]
    await dead_letters.send([*batch.poison, *refused], stop)
    return written
