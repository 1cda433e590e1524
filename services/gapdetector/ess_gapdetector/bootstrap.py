"""Wiring: builds the detector's adapters from its settings and hands them to the service.

Nothing here decides anything; swap any adapter for a fake with the shape in
`ports` and the service runs the same (see tests/unit/gapdetector).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.store import ArchiveStore
from ess_common.control_topic import StatusTail
from ess_common.db import DbTimeouts
from ess_common.kafka import ReadingProducer
from ess_gapdetector.archive_restore import ArchiveRestorer
from ess_gapdetector.clusters import LinkedClusters
from ess_gapdetector.heal import Healer
from ess_gapdetector.kafka_feed import ReplayPublisher, SinkProgress, SlotFeed, TopicRetention
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.settings import GapDetectorSettings
from ess_loss.slots import SlotTracker
from ess_tables.links import ClusterLink


def bootstrap(settings: GapDetectorSettings, registry: CollectorRegistry) -> GapDetectorService:
    s = settings
    metrics = GapMetrics(registry)
    tracker = SlotTracker(s.largest_period_s, s.smallest_period_s)
    timeouts = DbTimeouts(command_s=s.gap_db_command_timeout_s)
    clusters = LinkedClusters(
        {c: ClusterLink(c, s.dsn(c), timeouts, "gapdetector") for c in s.gap_clusters}, metrics
    )
    requests = ReplayPublisher(
        lambda: ReadingProducer(s.kafka_bootstrap, s.topic_prefix), s.topic_prefix
    )
    healer = Healer(
        clusters,
        metrics,
        requests.publish,
        TopicRetention(s.kafka_bootstrap, s.topic_prefix).covers,
        coalesce_s=s.gap_coalesce_s,
        replay_timeout_s=s.gap_replay_timeout_s,
        sync_chunk_rows=s.gap_sync_chunk_rows,
        tracker=tracker,
        archive=_archive(s, clusters),
    )
    feed = SlotFeed(
        s.kafka_bootstrap,
        s.topic_prefix,
        s.gap_group_id,
        tables=s.gap_tables,
        tracker=tracker,
        metrics=metrics,
        poll_records=s.gap_poll_records,
    )
    return GapDetectorService(
        s,
        metrics=metrics,
        tracker=tracker,
        feed=feed,
        statuses=StatusTail(s.kafka_bootstrap, s.topic_prefix, client_id="gapdetector-control"),
        requests=requests,
        clusters=clusters,
        healer=healer,
        sink_groups=SinkProgress(
            s.kafka_bootstrap, s.topic_prefix, {c: s.sink_group(c) for c in s.gap_clusters}
        ),
    )


def _archive(s: GapDetectorSettings, clusters: LinkedClusters) -> ArchiveRestorer | None:
    if not (s.gap_archive_restore and s.archive_configured):
        return None
    return ArchiveRestorer(ArchiveReader(ArchiveStore(s)), clusters)
