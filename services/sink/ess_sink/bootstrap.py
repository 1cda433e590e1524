"""Wiring: build the sink's adapters from its settings and hand them to `SinkService`.

Nothing here decides anything; tests that want the loop without the servers
build `SinkService` (or a `Lane`, a `Checkpoint`) from fakes instead.
"""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry

from ess_common.backoff import Backoff
from ess_common.db import DbTimeouts, connect
from ess_common.kafka import OffsetCommittingConsumer, ReadingProducer
from ess_common.kafka_offsets import offset_reader
from ess_common.settings import load_settings
from ess_common.topics import replay_topic, telemetry_topic
from ess_sink.checkpoint import Checkpoint
from ess_sink.lag import LagMonitor
from ess_sink.lane import Lane
from ess_sink.metrics import ReplayMetrics, SinkMetrics
from ess_sink.replay_worker import ReplayClients, ReplayWorker
from ess_sink.service import SinkService
from ess_sink.settings import ReplaySettings, SinkSettings
from ess_sink.store import ClusterStore
from ess_tables.batch import BatchDecoder
from ess_tables.dead_letters import DeadLetters
from ess_tables.registry_feed import RegistryFollower

# A long replay is not a dead member of the control topic's group.
_REPLAY_MAX_POLL_INTERVAL_MS = 6 * 3600 * 1000


def bootstrap(settings: SinkSettings, registry: CollectorRegistry) -> SinkService:
    """The sink of `settings.sink_cluster`: one consumer, one DLQ producer, a lane (with
    its own database connection and checkpoint) per `sink_db_connections`, a replay worker."""
    s = settings
    name = f"sink-{s.sink_cluster}"
    metrics = SinkMetrics(registry)
    consumer = OffsetCommittingConsumer(
        s.kafka_bootstrap,
        s.group_id,
        [telemetry_topic(t, s.topic_prefix) for t in s.sink_tables],
        client_id=name,
        group_instance_id=s.sink_group_instance_id,
        session_timeout_ms=int(s.sink_session_timeout_s * 1000),
        heartbeat_interval_ms=int(s.sink_session_timeout_s * 1000 / 3),
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    dlq_producer = ReadingProducer(s.kafka_bootstrap, s.topic_prefix)
    dlq = _dead_letters(
        s, metrics, Backoff(s.sink_retry_initial_s, s.sink_retry_max_s), "sink", dlq_producer
    )
    lag = LagMonitor(consumer, metrics.lag, s.sink_cluster, s.topic_prefix)
    decoder = BatchDecoder(s.topic_prefix, s.bounds)
    count_db_error = partial(_count_db_error, metrics, s.sink_cluster)
    stores = [
        ClusterStore(
            s.sink_dsn,
            _timeouts(s),
            f"{name}-{i}",
            Backoff(s.sink_retry_initial_s, s.sink_retry_max_s),
            count_db_error,
        )
        for i in range(s.sink_db_connections)
    ]
    lanes = [
        Lane(
            i,
            s.sink_db_connections,
            consumer=consumer,
            checkpoint=Checkpoint(
                store=store,
                dead_letters=dlq,
                offsets=consumer,
                lag=lag,
                metrics=metrics,
                cluster=s.sink_cluster,
            ),
            decoder=decoder,
            max_rows=s.sink_batch_max_rows,
            max_wait_s=s.sink_batch_max_wait_s,
            paused_partitions=metrics.paused_partitions.labels(s.sink_cluster),
            count_revoked_batch=lambda outcome: metrics.revoked_batches.labels(
                s.sink_cluster, outcome
            ).inc(),
            revoke_wait_s=s.sink_revoke_wait_s,
        )
        for i, store in enumerate(stores)
    ]
    for lane in lanes:
        consumer.on_revoke(lane.partitions_revoked)
    replays = replay_worker(s, registry, metrics=metrics)
    fleet = RegistryFollower(  # the fleet registry's records into this cluster
        s.kafka_bootstrap,
        s.topic_prefix,
        f"{s.group_id}-registry",
        partial(connect, s.sink_dsn, timeouts=_timeouts(s), application_name=f"{name}-registry"),
        Backoff(s.sink_retry_initial_s, s.sink_retry_max_s),
    )
    return SinkService(
        s,
        consumer=consumer,
        dlq_producer=dlq_producer,
        stores=stores,
        lanes=lanes,
        lag=lag,
        replays=replays,
        metrics=metrics,
        companions=(fleet,),
    )


def replay_worker(
    sink: SinkSettings,
    registry: CollectorRegistry,
    settings: ReplaySettings | None = None,
    metrics: SinkMetrics | None = None,
) -> ReplayWorker:
    """The worker serving the control topic's replay requests for `sink.sink_cluster`
    (`settings` default: `ESS_SINK_REPLAY_*`; `metrics`: the sink's, for its DLQ counts)."""
    r = settings or load_settings(ReplaySettings)
    sink_metrics = metrics or SinkMetrics(registry)
    group = r.group_id or f"{sink.group_id}-replay"
    name = f"sink-{sink.sink_cluster}-replay"
    clients = ReplayClients(
        control=partial(
            OffsetCommittingConsumer,
            sink.kafka_bootstrap,
            group,
            [replay_topic(sink.topic_prefix)],
            client_id=name,
            max_poll_interval_ms=_REPLAY_MAX_POLL_INTERVAL_MS,
        ),
        status=partial(ReadingProducer, sink.kafka_bootstrap, sink.topic_prefix),
        reader=partial(offset_reader, sink.kafka_bootstrap, client_id=f"{name}-read"),
        database=partial(connect, sink.sink_dsn, timeouts=_timeouts(sink), application_name=name),
        dead_letters=partial(
            _dead_letters, sink, sink_metrics, Backoff(r.retry_initial_s, r.retry_max_s), "replay"
        ),
    )
    return ReplayWorker(
        cluster=sink.sink_cluster,
        topic_prefix=sink.topic_prefix,
        group_id=group,
        settings=r,
        clients=clients,
        metrics=ReplayMetrics(registry),
        backoff=Backoff(r.retry_initial_s, r.retry_max_s),
        bounds=sink.bounds,
    )


def _dead_letters(
    s: SinkSettings, metrics: SinkMetrics, backoff: Backoff, via: str, producer: ReadingProducer
) -> DeadLetters:
    return DeadLetters(
        producer,
        s.topic_prefix,
        s.sink_cluster,
        backoff=backoff,
        count=lambda reason, n: metrics.dlq.labels(s.sink_cluster, reason).inc(n),
        count_retry=metrics.dlq_retries.labels(s.sink_cluster).inc,
        via=via,
    )


def _timeouts(s: SinkSettings) -> DbTimeouts:
    return DbTimeouts(s.sink_db_connect_timeout_s, s.sink_db_command_timeout_s)


def _count_db_error(metrics: SinkMetrics, cluster: str, kind: str) -> None:
    metrics.db_errors.labels(cluster, kind).inc()
