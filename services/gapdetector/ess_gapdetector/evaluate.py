"""Evaluating one window of one table: the registry says who is expected, the tracker
what reached Kafka and where, each cluster that answers what it holds, the sink
groups' commits what is still pending (`ess_loss.window` does the accounting)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_gapdetector.ports import ClusterAccess
from ess_gapdetector.windows import Window
from ess_loss.lossmath import TableWindowLoss
from ess_loss.service_time import FleetRegistry
from ess_loss.slots import SlotTracker
from ess_loss.window import Committed, window_lag, window_loss


@dataclass(frozen=True)
class WindowResult:
    table: Table
    window: Window
    loss: TableWindowLoss
    clusters: tuple[Cluster, ...]  # clusters that answered
    table_bytes: Mapping[str, int]
    final: bool = True  # False: some sink group has not passed the window yet
    sink_lag: Mapping[str, int] = field(default_factory=dict)  # cluster -> messages to go

    @property
    def sites(self) -> set[str]:
        return {d.site for d in self.loss.devices}


class Evaluator:
    def __init__(self, clusters: ClusterAccess, tracker: SlotTracker) -> None:
        self.clusters = clusters
        self.tracker = tracker

    async def evaluate(
        self,
        table: Table,
        window: Window,
        registry: FleetRegistry,
        *,
        committed: Committed | None,
        sites: Collection[str] | None = None,
    ) -> WindowResult | None:
        """Loss of every device the registry expects (of `sites`); None when no cluster
        could be asked. `committed=None`: the window is final (nothing pending)."""

        async def present(cluster: Cluster) -> dict[str, int] | None:
            return await self.clusters.presence(cluster, table, window.start, window.end)

        found = await window_loss(
            self.tracker,
            table,
            window.start_s,
            window.end_s,
            registry=registry,
            clusters=self.clusters.names,
            presence_of=present,
            committed=committed,
            sites=sites,
        )
        if found is None:
            return None
        sizes: dict[str, int] = {}
        for cluster in found.clusters:
            size = await self.clusters.table_bytes(cluster, table)
            if size is not None:
                sizes[cluster] = size
        lag: dict[str, int] = {
            c: window_lag(self.tracker, table, window.start_s, window.end_s, offsets)
            for c, offsets in (committed or {}).items()
            if offsets is not None and c in found.clusters
        }
        final = not found.loss.pending
        return WindowResult(table, window, found.loss, found.clusters, sizes, final, lag)
