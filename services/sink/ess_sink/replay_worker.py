"""The sink's second task: serve replay requests for its own cluster.

It consumes the control topic with its own group (`<sink group>-replay`, so
`ess-sink-local-replay` by default), so requests published while the sink
was down are served when it is back, and commits a request's offset only
after the replay finished (at least once: a replay served twice changes
nothing). The telemetry group's offsets
are never touched: the data is read with a group-less consumer.

For each request it publishes `ReplayStatus` messages on the control topic
(started, progress every few seconds, completed or failed) and logs the
outcome; metrics count requests, messages and rows.

Failures branch on `ReplayError.retriable`: a retriable one (Kafka stalled
mid-replay) is tried again after the shared backoff, up to
`ESS_SINK_REPLAY_ATTEMPTS` tries; a non-retriable one (a request that cannot
be served as asked) fails at once; a stop is never committed, so the request
is served again after a restart. A request for a topic that does not exist
fails at once (it is rejected, and committed).

The worker supervises itself: anything that escapes serving (Kafka or the
database away, or an unexpected error, a bug) is logged once, counted in
`ess_sink_replay_worker_failures_total{kind}`, and the worker starts again
after the shared backoff. `ess_sink_replay_worker_up` is 0 meanwhile; after
`ESS_SINK_REPLAY_UNHEALTHY_AFTER` failures in a row (or if the task ended
without a stop) the sink's `/healthz` fails, so a worker that cannot recover
gets the pod restarted instead of dying silently.

Replays write through the sink's own path (`ess_tables.replay`): the same
slot bounds, reject bisection and dead-letter topic (header `via: replay`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from ess_common.backoff import Backoff, sleep_unless_stopped
from ess_common.clusters import Cluster
from ess_common.db_errors import DB_FAILURES
from ess_common.http import Health
from ess_common.kafka import OffsetCommittingConsumer, ReadingProducer
from ess_common.kafka_offsets import UnknownTopicError
from ess_common.logs import error_line
from ess_common.replay import (
    ControlDecodeError,
    ReplayRequest,
    ReplayState,
    ReplayStatus,
    decode_control,
    encode_control,
    utc_now,
)
from ess_common.topics import replay_topic
from ess_sink.metrics import ReplayMetrics
from ess_sink.settings import ReplaySettings
from ess_tables.batch import SlotBounds
from ess_tables.dead_letters import DeadLetterSink, DeadLettersNotSentError
from ess_tables.replay import (
    ReplayCounts,
    ReplayError,
    ReplayInterruptedError,
    execute_replay,
    plan_replay,
)

log = logging.getLogger(__name__)

# A replay that meets these fails (status "failed"); the detector then checks the gap.
_IO_ERRORS = (*DB_FAILURES, KafkaError)


@dataclass(frozen=True)
class ReplayClients:
    """The worker's connections, made anew for every attempt (a stopped aiokafka client
    cannot be started again); `ess_sink.bootstrap` builds them from the settings."""

    control: Callable[[], OffsetCommittingConsumer]  # the control topic, the worker's group
    status: Callable[[], ReadingProducer]  # publishes `ReplayStatus` messages
    reader: Callable[[], AIOKafkaConsumer]  # group-less: reads the telemetry topics
    database: Callable[[], Awaitable[asyncpg.Connection]]  # this sink's cluster
    dead_letters: Callable[[ReadingProducer], DeadLetterSink]  # the DLQ, through `status`'s client


class ReplayWorker:
    def __init__(
        self,
        *,
        cluster: Cluster,
        topic_prefix: str,
        group_id: str,
        settings: ReplaySettings,
        clients: ReplayClients,
        metrics: ReplayMetrics,
        backoff: Backoff,
        bounds: SlotBounds,
    ) -> None:
        self.cluster = cluster
        self.topic_prefix = topic_prefix
        self.group_id = group_id
        self.settings = settings
        self.metrics = metrics
        self.served = 0
        self._clients = clients
        self._backoff = backoff
        self._bounds = bounds
        self._running: str | None = None
        self.failures = 0  # in a row, since the worker last reached Kafka
        self.last_error: str | None = None
        self.ended = False  # the task returned without a stop: nothing serves replays

    def health(self) -> Health:
        """Not ok after `unhealthy_after` failures in a row, or once the worker ended."""
        ok = not self.ended and self.failures < self.settings.unhealthy_after
        return Health(
            ok=ok,
            detail={
                "replay_running": self._running,
                "replays": self.served,
                "replay_worker_failures": self.failures,
                "replay_worker_error": self.last_error,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve requests until `stop`; whatever escapes is counted and served again."""
        if not self.settings.enabled:
            log.info("replays disabled (ESS_SINK_REPLAY_ENABLED=false)")
            return
        up = self.metrics.worker_up.labels(self.cluster)
        try:
            while not stop.is_set():
                up.set(1)
                try:
                    await self._serve_requests(stop)
                except Exception as exc:  # noqa: BLE001 - loop boundary: counted, logged once, restarted
                    up.set(0)
                    self._failed(exc)
                    await sleep_unless_stopped(stop, self._backoff.next_delay())
        finally:
            up.set(0)
            self.ended = not stop.is_set()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = error_line(exc)
        kind = "unexpected"
        if isinstance(exc, KafkaError):
            kind = "kafka"
        elif isinstance(exc, DB_FAILURES):
            kind = "database"
        self.metrics.worker_failures.labels(self.cluster, kind).inc()
        if kind == "unexpected":
            log.error("replay worker failed (%d in a row); restarting", self.failures, exc_info=exc)
        else:
            log.warning(
                "replay worker: %s (%d in a row); restarting", self.last_error, self.failures
            )

    async def _serve_requests(self, stop: asyncio.Event) -> None:
        async with self._clients.control() as control, self._clients.status() as status:
            while not stop.is_set():
                fetched = await control.getmany(timeout_ms=500, max_records=1)
                self._backoff.reset()  # Kafka answers again
                self.failures, self.last_error = 0, None
                for tp, records in fetched.items():
                    for record in records:
                        try:
                            await self._handle(record.value or b"", status, stop)
                        except ReplayInterruptedError:
                            log.info("stopping mid-replay: the request is served again on restart")
                            return
                        await control.commit_processed({tp: record.offset})

    async def _handle(self, payload: bytes, status: ReadingProducer, stop: asyncio.Event) -> None:
        try:
            message = decode_control(payload)
        except ControlDecodeError as exc:
            log.warning("skipped an unreadable control message: %s", exc)
            return
        if not isinstance(message, ReplayRequest) or message.cluster != self.cluster:
            return
        age = (utc_now() - message.requested_at).total_seconds()
        if age > self.settings.max_request_age_s:
            log.info("skipped replay %s: requested %.0fs ago", message.id, age)
            return
        try:
            conn = await self._clients.database()
        except _IO_ERRORS as exc:
            reporter = _StatusReporter(self, message, status)
            reporter.send("failed", ReplayCounts(), f"database unreachable: {exc}"[:500])
            await reporter.flush()
            self.metrics.requests.labels(self.cluster, "failed").inc()
            log.warning("replay %s failed: database unreachable: %s", message.id, exc)
            return
        try:
            await self.serve(message, conn, status, stop)
        finally:
            await conn.close()

    async def serve(
        self,
        request: ReplayRequest,
        conn: asyncpg.Connection,
        status: ReadingProducer,
        stop: asyncio.Event,
    ) -> ReplayCounts | None:
        """Serve one request; returns its counts, or None when it failed."""
        started = time.monotonic()
        self._running = request.id
        self.metrics.active.labels(self.cluster).set(1)
        reporter = _StatusReporter(self, request, status)
        counts = ReplayCounts()
        try:
            try:
                counts = await self._replay(request, conn, reporter, counts, stop, status=status)
            except DeadLettersNotSentError as exc:
                raise ReplayInterruptedError(str(exc)) from exc
        except (ReplayError, UnknownTopicError, *_IO_ERRORS) as exc:  # the request fails
            if isinstance(exc, ReplayInterruptedError):
                raise
            self.metrics.requests.labels(self.cluster, "failed").inc()
            reporter.send("failed", counts, str(exc)[:500])
            log.warning("replay %s failed: %s", request.id, exc, extra={"request_id": request.id})
            await reporter.flush()
            return None
        finally:
            self._running = None
            self.metrics.active.labels(self.cluster).set(0)
        self._account(request, counts)
        reporter.send("completed", counts)
        await reporter.flush()
        self.metrics.seconds.labels(self.cluster).observe(time.monotonic() - started)
        log.info(
            "replay %s completed: %d messages read, %d rows in range, %d inserted,"
            " %d already present",
            request.id,
            counts.messages_read,
            counts.rows_in_range,
            counts.rows_inserted,
            counts.rows_present,
            extra={"request_id": request.id, "table": request.table},
        )
        return counts

    async def _replay(
        self,
        request: ReplayRequest,
        conn: asyncpg.Connection,
        reporter: _StatusReporter,
        counts: ReplayCounts,
        stop: asyncio.Event,
        *,
        status: ReadingProducer,
    ) -> ReplayCounts:
        """Plan and execute; again, with a fresh reader and plan (the upserts make a second
        pass harmless), after a retriable `ReplayError`, up to `attempts` tries."""
        attempt = 0
        while True:
            attempt += 1
            reader = self._clients.reader()
            await reader.start()
            try:
                plan = await plan_replay(reader, request, self.topic_prefix)
                counts.messages_planned = plan.messages
                if attempt == 1:
                    reporter.send("started", counts)
                    log.info(
                        "replay %s started: %s %s, up to %d messages",
                        request.id,
                        self.cluster,
                        request.table,
                        plan.messages,
                        extra={"request_id": request.id, "reason": request.reason},
                    )
                return await execute_replay(
                    reader,
                    conn,
                    plan,
                    lateness_s=self.settings.lateness_s,
                    batch_records=self.settings.batch_records,
                    idle_timeout_s=self.settings.idle_timeout_s,
                    progress=reporter.progress,
                    stop=stop,
                    dead_letters=self._clients.dead_letters(status),
                    bounds=self._bounds,
                    prefix=self.topic_prefix,
                )
            except ReplayError as exc:
                if not exc.retriable or attempt >= self.settings.attempts:
                    raise
                failure = exc
            finally:
                await reader.stop()
            delay = self._backoff.next_delay()
            log.warning(
                "replay %s: %s; try %d of %d in %.1fs",
                request.id,
                failure,
                attempt + 1,
                self.settings.attempts,
                delay,
                extra={"request_id": request.id},
            )
            if await sleep_unless_stopped(stop, delay):
                raise ReplayInterruptedError("stopping before the replay finished") from failure

    def _account(self, request: ReplayRequest, counts: ReplayCounts) -> None:
        self.served += 1
        c, t = self.cluster, request.table
        self.metrics.requests.labels(c, "completed").inc()
        self.metrics.messages.labels(c, t).inc(counts.messages_read)
        self.metrics.inserted.labels(c, t).inc(counts.rows_inserted)
        self.metrics.present.labels(c, t).inc(counts.rows_present)


class _StatusReporter:
    """Publishes a request's status messages without blocking the replay on their acks."""

    def __init__(self, worker: ReplayWorker, request: ReplayRequest, producer: ReadingProducer):
        self._worker = worker
        self._request = request
        self._producer = producer
        self._tasks: list[asyncio.Task[Any]] = []
        self._last = time.monotonic()

    def send(self, state: ReplayState, counts: ReplayCounts, detail: str | None = None) -> None:
        msg = ReplayStatus(
            request_id=self._request.id,
            cluster=self._worker.cluster,
            table=self._request.table,
            state=state,
            detail=detail,
            **counts.as_status_fields(),
        )
        self._tasks.append(asyncio.create_task(self._publish(encode_control(msg))))

    async def _publish(self, payload: bytes) -> None:
        topic = replay_topic(self._worker.topic_prefix)
        ack = await self._producer.send_raw(topic, payload, self._worker.cluster.encode())
        await ack

    def progress(self, counts: ReplayCounts) -> None:
        planned = max(counts.messages_planned, 1)
        self._worker.metrics.progress.labels(self._worker.cluster).set(
            min(1.0, counts.messages_read / planned)
        )
        if time.monotonic() - self._last >= self._worker.settings.status_interval_s:
            self._last = time.monotonic()
            self.send("progress", ReplayCounts(**counts.as_status_fields()))

    async def flush(self) -> None:
        """Wait for the status messages; one that cannot be sent is logged, not fatal."""
        tasks, self._tasks = self._tasks, []
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("replay status not published: %s", outcome)
