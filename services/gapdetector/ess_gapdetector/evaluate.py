"""Evaluating one window of one table: expected devices and Kafka slots from the tracker,
presence from each cluster that answers (`ess_loss.window` does the accounting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_gapdetector.ports import ClusterAccess
from ess_gapdetector.windows import Window
from ess_loss.lossmath import TableWindowLoss
from ess_loss.slots import SlotTracker
from ess_loss.window import window_loss


@dataclass(frozen=True)
class WindowResult:
    table: Table
    window: Window
    loss: TableWindowLoss
    clusters: tuple[Cluster, ...]  # clusters that answered
    table_bytes: Mapping[str, int]


class Evaluator:
    def __init__(self, clusters: ClusterAccess, tracker: SlotTracker, device_silent_s: int) -> None:
        self.clusters = clusters
        self.tracker = tracker
        self.device_silent_s = device_silent_s

    async def evaluate(self, table: Table, window: Window) -> WindowResult | None:
        """Loss of every expected device; None when no cluster could be asked."""

        async def present(cluster: Cluster) -> dict[str, int] | None:
            return await self.clusters.presence(cluster, table, window.start, window.end)

        a, b = window.start_s, window.end_s
        found = await window_loss(
            self.tracker,
            table,
            a,
            b,
            expected=self.tracker.expected_devices(table, a, b, self.device_silent_s),
            clusters=self.clusters.names,
            presence_of=present,
        )
        if found is None:
            return None
        sizes: dict[str, int] = {}
        for cluster in found.clusters:
            size = await self.clusters.table_bytes(cluster, table)
            if size is not None:
                sizes[cluster] = size
        return WindowResult(table, window, found.loss, found.clusters, sizes)
