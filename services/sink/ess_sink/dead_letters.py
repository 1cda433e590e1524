"""The dead-letter topic: original bytes and key, the reason and origin in headers.

Headers: `reason` (bounded code), `detail` (first 500 characters), `topic`,
`partition`, `offset` (where the message came from) and `sink` (the cluster
whose sink sent it). `essctl` or a person can replay from these.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self

from ess_common.kafka import ReadingProducer
from ess_common.topics import dlq_topic
from ess_sink.consume import Poison
from ess_sink.metrics import SinkMetrics

log = logging.getLogger(__name__)


def dlq_headers(poison: Poison, cluster: str) -> list[tuple[str, bytes]]:
    r = poison.record
    return [
        ("reason", poison.reason.encode()),
        ("detail", poison.detail[:500].encode()),
        ("topic", str(r.topic).encode()),
        ("partition", str(r.partition).encode()),
        ("offset", str(r.offset).encode()),
        ("sink", cluster.encode()),
    ]


class DeadLetters:
    def __init__(self, bootstrap: str, prefix: str, cluster: str, metrics: SinkMetrics) -> None:
        self._producer = ReadingProducer(bootstrap, prefix)
        self._topic = dlq_topic(prefix)
        self._cluster = cluster
        self._metrics = metrics

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, poison: Sequence[Poison]) -> None:
        """Produce every message and wait for Kafka's acks (before offsets are committed)."""
        if not poison:
            return
        acks: list[asyncio.Future[Any]] = []
        for p in poison:
            acks.append(
                await self._producer.send_raw(
                    self._topic, p.record.value or b"", p.record.key, dlq_headers(p, self._cluster)
                )
            )
        await asyncio.gather(*acks)
        reasons = Counter(p.reason for p in poison)
        for reason, count in reasons.items():
            self._metrics.dlq.labels(self._cluster, reason).inc(count)
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
