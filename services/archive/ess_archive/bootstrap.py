"""Wiring: the archive's consumer, object store, reader and writer from its settings."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ess_archive.metrics import ArchiveMetrics
from ess_archive.service import ArchiveService
from ess_archive.settings import ArchiveSettings
from ess_archive.writer import ArchiveWriter, RollupPolicy
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.store import ArchiveStore
from ess_common.backoff import Backoff
from ess_common.kafka import OffsetCommittingConsumer
from ess_common.topics import telemetry_topic
from ess_tables.batch import BatchDecoder

# A roll-up of a large day may keep the loop from polling for a while.
_MAX_POLL_INTERVAL_MS = 15 * 60 * 1000


def bootstrap(settings: ArchiveSettings, registry: CollectorRegistry) -> ArchiveService:
    s = settings
    metrics = ArchiveMetrics(registry)
    consumer = OffsetCommittingConsumer(
        s.kafka_bootstrap,
        s.archive_group_id,
        [telemetry_topic(t, s.topic_prefix) for t in s.archive_tables],
        client_id="archive",
        group_instance_id=s.archive_group_instance_id,
        session_timeout_ms=int(s.archive_session_timeout_s * 1000),
        heartbeat_interval_ms=int(s.archive_session_timeout_s * 1000 / 3),
        max_poll_interval_ms=_MAX_POLL_INTERVAL_MS,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    store = ArchiveStore(s)
    reader = ArchiveReader(store)
    policy = RollupPolicy(
        part_rows=s.archive_part_rows,
        after_s=s.archive_rollup_after_s,
        row_group_rows=s.archive_row_group_rows,
        orphan_age_s=s.archive_orphan_age_s,
    )
    return ArchiveService(
        s,
        consumer=consumer,
        decoder=BatchDecoder(s.topic_prefix, s.bounds),
        writer=ArchiveWriter(store, reader, metrics, policy),
        reader=reader,
        metrics=metrics,
        backoff=Backoff(s.archive_retry_initial_s, s.archive_retry_max_s),
    )
