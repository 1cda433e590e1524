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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.http import Health
from ess_common.kafka import OffsetCommittingConsumer, ReadingProducer
from ess_common.kafka_offsets import offset_reader
from ess_common.replay import (
    ControlDecodeError,
    ReplayRequest,
    ReplayState,
    ReplayStatus,
    decode_control,
    encode_control,
    utc_now,
)
from ess_common.settings import load_settings
from ess_common.topics import replay_topic
from ess_sink.settings import SinkSettings
from ess_tables.replay import (
    ReplayCounts,
    ReplayError,
    ReplayInterruptedError,
    execute_replay,
    plan_replay,
)

log = logging.getLogger(__name__)

_RETRY_S = 5.0
# A replay that meets these fails (status "failed"); the detector then checks the gap.
_IO_ERRORS = (*DB_FAILURES, KafkaError)


class ReplaySettings(BaseSettings):
    """`ESS_SINK_REPLAY_*`: how a sink serves replay requests."""

    model_config = SettingsConfigDict(env_prefix="ESS_SINK_REPLAY_", frozen=True, extra="ignore")

    enabled: bool = True
    group_id: str | None = Field(default=None, description="default: <sink group>-replay")
    lateness_s: float = Field(default=120.0, ge=0, le=86400)
    batch_records: int = Field(default=5000, ge=1, le=100_000)
    status_interval_s: float = Field(default=2.0, gt=0)
    idle_timeout_s: float = Field(default=30.0, gt=0)
    max_request_age_s: float = Field(
        default=86400.0, gt=0, description="older requests are skipped (e.g. a new group's backlog)"
    )


class ReplayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ess_sink_replay_requests_total",
            "Replay requests for this cluster by outcome (completed, failed)",
            ("cluster", "outcome"),
            registry=registry,
        )
        self.messages = Counter(
            "ess_sink_replay_messages_read_total",
            "Kafka messages read by replays",
            ("cluster", "table"),
            registry=registry,
        )
        self.inserted = Counter(
            "ess_sink_replay_rows_inserted_total",
            "Rows a replay inserted (they were missing)",
            ("cluster", "table"),
            registry=registry,
        )
        self.present = Counter(
            "ess_sink_replay_rows_present_total",
            "Rows a replay found already present",
            ("cluster", "table"),
            registry=registry,
        )
        self.active = Gauge(
            "ess_sink_replay_active", "1 while a replay runs", ("cluster",), registry=registry
        )
        self.progress = Gauge(
            "ess_sink_replay_progress_ratio",
            "Messages read / planned upper bound of the running replay",
            ("cluster",),
            registry=registry,
        )
        self.seconds = Histogram(
            "ess_sink_replay_duration_seconds",
            "Time to serve one replay request",
            ("cluster",),
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200),
            registry=registry,
        )


class ReplayWorker:
    def __init__(
        self,
        sink: SinkSettings,
        registry: CollectorRegistry,
        settings: ReplaySettings | None = None,
    ) -> None:
        self.sink = sink
        self.settings = settings or load_settings(ReplaySettings)
        self.cluster = sink.sink_cluster
        self.metrics = ReplayMetrics(registry)
        self.served = 0
        self._running: str | None = None

    @property
    def group_id(self) -> str:
        return self.settings.group_id or f"{self.sink.group_id}-replay"

    def health(self) -> Health:
        return Health(ok=True, detail={"replay_running": self._running, "replays": self.served})

    async def run(self, stop: asyncio.Event) -> None:
        """Serve requests until `stop`; Kafka or database trouble is retried, never fatal."""
        if not self.settings.enabled:
            log.info("replays disabled (ESS_SINK_REPLAY_ENABLED=false)")
            return
        while not stop.is_set():
            try:
                await self._serve_requests(stop)
            except _IO_ERRORS as exc:
                log.warning("replay worker: %s; retrying in %.0fs", exc, _RETRY_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY_S)
            else:
                return

    async def _serve_requests(self, stop: asyncio.Event) -> None:
        s = self.sink
        control = OffsetCommittingConsumer(
            s.kafka_bootstrap,
            self.group_id,
            [replay_topic(s.topic_prefix)],
            client_id=f"sink-{self.cluster}-replay",
            max_poll_interval_ms=6 * 3600 * 1000,  # a long replay is not a dead member
        )
        status = ReadingProducer(s.kafka_bootstrap, s.topic_prefix)
        async with control, status:
            while not stop.is_set():
                fetched = await control.getmany(timeout_ms=500, max_records=1)
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
        s = self.sink
        try:
            conn = await connect(
                s.sink_dsn,
                timeouts=DbTimeouts(s.sink_db_connect_timeout_s, s.sink_db_command_timeout_s),
                application_name=f"sink-{self.cluster}-replay",
            )
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
        reader = offset_reader(
            self.sink.kafka_bootstrap, client_id=f"sink-{self.cluster}-replay-read"
        )
        counts = ReplayCounts()
        try:
            await reader.start()
            try:
                plan = await plan_replay(reader, request, self.sink.topic_prefix)
                counts.messages_planned = plan.messages
                reporter.send("started", counts)
                log.info(
                    "replay %s started: %s %s, up to %d messages",
                    request.id,
                    self.cluster,
                    request.table,
                    plan.messages,
                    extra={"request_id": request.id, "reason": request.reason},
                )
                counts = await execute_replay(
                    reader,
                    conn,
                    plan,
                    lateness_s=self.settings.lateness_s,
                    batch_records=self.settings.batch_records,
                    idle_timeout_s=self.settings.idle_timeout_s,
                    progress=reporter.progress,
                    stop=stop,
                )
            finally:
                await reader.stop()
        except (ReplayError, *_IO_ERRORS) as exc:
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
        topic = replay_topic(self._worker.sink.topic_prefix)
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
