"""Collecting a batch: fetch and decode (`ess_tables.batch`) until it is big or old enough.

A batch grows until it holds `max_rows` messages or `max_wait` has passed,
whichever comes first; past `max_wait` it keeps growing while the previous
batch is still being written (larger batches under load, low latency when
idle).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from aiokafka import TopicPartition

from ess_tables.batch import BatchDecoder, DecodedBatch, Record

# Messages decoded between two turns of the event loop: the previous batch's
# database round trips wait for those turns, so slices keep the database busy.
DECODE_SLICE = 1000


class Fetcher(Protocol):
    """What `collect_batch` needs from a consumer (`OffsetCommittingConsumer` has it)."""

    async def getmany(
        self, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]: ...


async def collect_batch(
    consumer: Fetcher,
    decoder: BatchDecoder,
    max_rows: int,
    max_wait_s: float,
    *,
    stop: asyncio.Event,
    writing: Callable[[], bool] = lambda: False,
    batch: DecodedBatch | None = None,
) -> DecodedBatch:
    """Fetch and decode until `max_rows` messages, or `max_wait_s` has passed and nothing
    is being written (`writing()`): while the previous batch is still in the database
    the next keeps filling, so batches grow under load and stay small when idle.
    Returns early on stop. `batch`: fill this one (its owner may drop revoked
    partitions from it meanwhile)."""
    batch = DecodedBatch() if batch is None else batch
    deadline = time.monotonic() + max_wait_s
    while batch.size < max_rows and not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if not writing():
                break
            remaining = 0.05
        fetched = await consumer.getmany(
            timeout_ms=max(1, int(min(remaining, 0.5) * 1000)),
            max_records=min(max_rows - batch.size, DECODE_SLICE),
        )
        decoder.add(batch, fetched)
        await asyncio.sleep(0)  # let the batch being written take its next step
    return batch
