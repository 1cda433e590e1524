"""Keeping the tracker's knowledge across restarts: what to save when, and restoring it.

The storage is `state` (tables in the clusters); this module decides which
segments each cluster still lacks (each cluster has its own "saved up to"
time, so a cluster that was down gets everything it missed) and turns a loaded
state back into the tracker's bits and offsets.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from ess_common.clusters import Cluster
from ess_gapdetector.ports import ClusterAccess
from ess_gapdetector.settings import GapDetectorSettings
from ess_gapdetector.state import DetectorState
from ess_loss.slots import SlotTracker

log = logging.getLogger(__name__)


class StateKeeper:
    def __init__(
        self, settings: GapDetectorSettings, clusters: ClusterAccess, tracker: SlotTracker
    ) -> None:
        self.settings = settings
        self.clusters = clusters
        self.tracker = tracker
        self.positions: dict[str, int] = {}
        self.saved_up_to: dict[Cluster, float] = {}  # cluster -> touched-at of its last save
        self._last_save = float("-inf")
        self.restored_segments = 0

    def due(self, now: float) -> bool:
        return now - self._last_save >= self.settings.gap_state_interval_s

    async def save(self, now: float) -> None:
        """Save the segments each cluster lacks, the offsets and the positions."""
        self._last_save = now
        seg = self.tracker.snapshot_segment_s()
        horizon = int(now - self.settings.rebuild_horizon_s)
        touched_now = time.time()
        for cluster in self.clusters.names:
            since = self.saved_up_to.get(cluster, float("-inf"))
            segments = [
                (table, start, device, raw)
                for table, start in sorted(self.tracker.segments_touched_since(since, seg))
                for device, raw in self.tracker.segment_bits(table, start, seg).items()
            ]
            state = DetectorState(
                saved_at=datetime.now(UTC),
                positions=dict(self.positions),
                slice_offsets=[(t, p, s, lo, hi) for (t, p, s), (lo, hi) in self._offsets()],
                partitions=[(t, d, p) for (t, d), p in self.tracker.partition_of.items()],
                segments=segments,
            )
            group = self.settings.gap_group_id
            if await self.clusters.save_state_on(cluster, group, state, horizon):
                self.saved_up_to[cluster] = touched_now

    def _offsets(self) -> list[tuple[tuple[str, int, int], list[int]]]:
        return list(self.tracker.slice_offsets.items())

    async def restore(self) -> dict[str, int] | None:
        """Load the newest saved state into the tracker; its positions, or None."""
        s = self.settings
        started = time.perf_counter()
        since = int(time.time() - s.rebuild_horizon_s)
        state = await self.clusters.load_state(s.gap_group_id, since, s.gap_tables)
        if state is None:
            log.info("no saved state: re-reading Kafka over the rebuild horizon")
            return None
        now = time.time()
        tables = {str(t): t for t in s.gap_tables}
        for name, start, device, raw in state.segments:
            if name in tables:
                self.tracker.restore_segment(tables[name], device, start, raw, now)
        for name, partition, slice_start, lo, hi in state.slice_offsets:
            if name in tables and slice_start >= since:
                self.tracker.slice_offsets[(tables[name], partition, slice_start)] = [lo, hi]
        for name, device, partition in state.partitions:
            if name in tables:
                self.tracker.partition_of[(tables[name], device)] = partition
        self.restored_segments = len(state.segments)
        log.info(
            "restored %d segments saved at %s in %.2fs; reading Kafka from the saved positions",
            len(state.segments),
            state.saved_at.isoformat(),
            time.perf_counter() - started,
        )
        return state.positions
