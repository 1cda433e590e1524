"""Publishing readings: every reading goes through the spool, in order.

`submit` appends the encoded reading to the spool (a disk write to the page
cache, no waiting). The publisher task reads the spool in order and hands
records to the idempotent, acks=all producer, keeping at most
`max_in_flight` unacknowledged. A record leaves the spool only when Kafka
acknowledged it and every record before it: the spool cursor is the first
unacknowledged record, so a restart resends exactly what was not confirmed.

While Kafka is unreachable, sends stall (aiokafka keeps retrying the batches
in flight, idempotently, so they are never written twice) and readings pile
up on disk; when Kafka returns they drain in order. A send that fails outright,
or whose acknowledgement fails, is retried from the spool after the shared
`Backoff` (reset by the next acknowledgement).

Every record read from the spool is registered as unacknowledged before the
first await that hands it to aiokafka (`send_raw` can wait for buffer room or
metadata): the cursor is the first unacknowledged record, so it can never be
persisted past a record that is still on its way.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aiokafka.errors import KafkaError

from ess_collector.kafka_batches import SentBatch
from ess_collector.metrics import CollectorMetrics
from ess_collector.spool import Spool, SpoolRecord, fsync_and_close
from ess_common.backoff import Backoff
from ess_common.codec import encode_reading
from ess_common.kafka import RawProducer
from ess_common.model import Reading
from ess_common.topics import telemetry_topic

log = logging.getLogger(__name__)


@runtime_checkable
class BatchSender(Protocol):
    """A producer that takes a round of records at once (`BatchingProducer`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_records(self, records: Sequence[SpoolRecord], sent: list[SentBatch]) -> None: ...


CURSOR_SAVE_INTERVAL_S = 0.5
SYNC_INTERVAL_S = 1.0
_IDLE_WAIT_S = 0.05


class SpoolingPublisher:
    def __init__(
        self,
        spool: Spool,
        *,
        producer: RawProducer | BatchSender,
        metrics: CollectorMetrics,
        topic_prefix: str,
        max_in_flight: int,
        retry: Backoff,
    ) -> None:
        self.spool = spool
        self._producer = producer
        self._metrics = metrics
        self._prefix = topic_prefix
        self._max_in_flight = max_in_flight
        self._retry = retry
        # Unacknowledged records; new ones are inserted in sequence order and a resend
        # re-assigns its key in place, so the first key is always the oldest.
        self._unacked: dict[int, SpoolRecord] = {}
        # (first sequence number, slot) of each slot submitted: the spool's oldest age
        # (readings recovered from disk at start are not in it)
        self._slot_starts: collections.deque[tuple[int, float]] = collections.deque()
        metrics.spool_max_bytes.set(spool.max_bytes)
        self._to_resend: list[int] = []  # sorted sequence numbers whose send failed
        self._wakeup = asyncio.Event()
        self._dropped_reported = spool.dropped
        self._corrupt_reported = 0
        self._ack_failed = False  # an acknowledgement failed since the last resend
        self.kafka_ready = False
        self.last_ack_monotonic: float | None = None
        self._update_gauges()

    # -- the poller's side -------------------------------------------------------

    def submit(self, reading: Reading) -> None:
        """Queue one reading for Kafka (never blocks on Kafka)."""
        topic = telemetry_topic(reading.table, self._prefix)
        seq = self.spool.append(topic, reading.device.key.encode(), encode_reading(reading))
        slot = reading.ts.timestamp()
        if seq is not None and (not self._slot_starts or self._slot_starts[-1][1] != slot):
            self._slot_starts.append((seq, slot))
        self._wakeup.set()

    def flush(self) -> None:
        """Make submitted readings visible to the publisher task (end of a poll cycle)."""
        self.spool.flush()
        self._update_gauges()

    # -- the publisher task --------------------------------------------------------

    async def run(self, stop: asyncio.Event, drain_timeout_s: float) -> None:
        """Publish until `stop`, then drain what is left for at most `drain_timeout_s`."""
        housekeeping = asyncio.create_task(self._housekeeping(), name="spool-housekeeping")
        sending = asyncio.create_task(self._send_forever(), name="publisher")
        try:
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({stopped, sending}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if sending.done():
                sending.result()  # the publisher died: surface why
            deadline = time.monotonic() + drain_timeout_s
            while self.spool.depth > 0 and time.monotonic() < deadline and not sending.done():  # noqa: ASYNC110 - polls a depth, bounded by the deadline
                await asyncio.sleep(0.05)
            if self.spool.depth:
                log.warning(
                    "publisher stopped with %d readings left in the spool", self.spool.depth
                )
        finally:
            for task in (sending, housekeeping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._commit()
            self.spool.close()
            await self._close_producer()

    async def _close_producer(self) -> None:
        try:
            await asyncio.wait_for(self._producer.stop(), 10)
        except (TimeoutError, KafkaError) as exc:
            log.warning("closing the Kafka producer: %s", exc)

    async def _send_forever(self) -> None:
        await self._start_producer()
        while True:
            if self._to_resend and self._ack_failed:
                self._ack_failed = False
                delay = self._retry.next_delay()
                log.warning("Kafka refused acknowledgements; resending in %.1fs", delay)
                await asyncio.sleep(delay)
            batch = self._next_batch()
            if not batch:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), _IDLE_WAIT_S)
                continue
            for record in batch:  # before any await: the cursor stays behind them
                self._unacked.setdefault(record.seq, record)
            if isinstance(self._producer, BatchSender):
                await self._send_batches(self._producer, batch)
                continue
            for index, record in enumerate(batch):
                try:
                    ack = await self._producer.send_raw(record.topic, record.value, record.key)
                except KafkaError as exc:
                    await self._send_failed(batch[index:], exc)
                    break
                ack.add_done_callback(functools.partial(self._acked, record.seq))

    async def _send_batches(self, producer: BatchSender, batch: list[SpoolRecord]) -> None:
        sent: list[SentBatch] = []
        try:
            await producer.send_records(batch, sent)
        except KafkaError as exc:
            queued = {seq for s in sent for seq in s.seqs}
            self._watch(sent)
            await self._send_failed([r for r in batch if r.seq not in queued], exc)
            return
        self._watch(sent)

    def _watch(self, sent: list[SentBatch]) -> None:
        for batch in sent:
            batch.ack.add_done_callback(functools.partial(self._batch_acked, batch))

    def _batch_acked(self, batch: SentBatch, ack: asyncio.Future[Any]) -> None:
        if ack.cancelled() or ack.exception() is not None:
            for seq in batch.seqs:
                self._acked(seq, ack)  # each failed record is resent
            return
        acked = 0
        for seq in batch.seqs:
            if self._unacked.pop(seq, None) is not None:
                acked += 1
        if not acked:
            return
        self.kafka_ready = True
        self.last_ack_monotonic = time.monotonic()
        self._retry.reset()
        self._wakeup.set()  # the window has room again
        self._metrics.readings_published.labels(batch.topic.rsplit(".", 1)[-1]).inc(acked)

    async def _start_producer(self) -> None:
        while True:
            try:
                await self._producer.start()
            except KafkaError as exc:
                delay = self._retry.next_delay()
                log.warning(
                    "Kafka unreachable (%s); readings wait in the spool, retry in %.1fs",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._retry.reset()
            self.kafka_ready = True
            return

    def _next_batch(self) -> list[SpoolRecord]:
        if self._to_resend:  # failed sends first: they are older than anything unread
            seqs, self._to_resend = self._to_resend, []
            return [self._unacked[seq] for seq in seqs]
        room = self._max_in_flight - len(self._unacked)
        return self.spool.read(room) if room > 0 else []

    async def _send_failed(self, unsent: list[SpoolRecord], exc: Exception) -> None:
        self.kafka_ready = False
        self._metrics.publish_errors.labels(type(exc).__name__).inc()
        for record in unsent:
            self._schedule_resend(record.seq)
        delay = self._retry.next_delay()
        log.warning("sending to Kafka failed (%s); retry in %.1fs", exc, delay)
        await asyncio.sleep(delay)

    def _acked(self, seq: int, ack: asyncio.Future[Any]) -> None:
        if ack.cancelled() or ack.exception() is not None:
            error = ack.exception() if not ack.cancelled() else None
            self.kafka_ready = False
            self._metrics.publish_errors.labels(type(error).__name__).inc()
            if seq in self._unacked:
                self._schedule_resend(seq)
                self._ack_failed = True
            return
        record = self._unacked.pop(seq, None)
        if record is None:
            return
        self.kafka_ready = True
        self.last_ack_monotonic = time.monotonic()
        self._retry.reset()
        self._wakeup.set()  # the window has room again
        table = record.topic.rsplit(".", 1)[-1]
        self._metrics.readings_published.labels(table).inc()

    def _schedule_resend(self, seq: int) -> None:
        index = bisect.bisect_left(self._to_resend, seq)
        if index == len(self._to_resend) or self._to_resend[index] != seq:
            self._to_resend.insert(index, seq)

    def _commit(self) -> None:
        first_unacked = next(iter(self._unacked), None)
        self.spool.commit(first_unacked if first_unacked is not None else self.spool.read_position)
        self._update_gauges()

    def _oldest_age(self) -> float:
        acked = self.spool.cursor
        while len(self._slot_starts) > 1 and self._slot_starts[1][0] <= acked:
            self._slot_starts.popleft()
        if self.spool.depth == 0 or not self._slot_starts:
            return 0.0
        return max(0.0, time.time() - self._slot_starts[0][1])

    def _update_gauges(self) -> None:
        self._metrics.spool_depth.set(self.spool.depth)
        self._metrics.spool_bytes.set(self.spool.size_bytes)
        self._metrics.spool_oldest_age.set(self._oldest_age())
        dropped = self.spool.dropped - self._dropped_reported
        if dropped:
            self._metrics.spool_dropped.inc(dropped)
            self._dropped_reported = self.spool.dropped
        corrupt = self.spool.corrupt - self._corrupt_reported
        if corrupt:
            self._metrics.spool_corrupt.inc(corrupt)
            self._corrupt_reported = self.spool.corrupt

    async def _housekeeping(self) -> None:
        """Commit acknowledged records, save the cursor, fsync the segments (in a thread)."""
        last_sync = time.monotonic()
        while True:
            await asyncio.sleep(CURSOR_SAVE_INTERVAL_S)
            self._commit()
            await asyncio.to_thread(self.spool.save_cursor)
            if time.monotonic() - last_sync >= SYNC_INTERVAL_S:
                last_sync = time.monotonic()
                await asyncio.to_thread(fsync_and_close, self.spool.sync_handles())
