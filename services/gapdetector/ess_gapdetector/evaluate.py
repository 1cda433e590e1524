"""Evaluating one window of one table: slots from the tracker, presence from each cluster."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ess_common.db_errors import DB_FAILURES
from ess_common.model import Table
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.windows import Window
from ess_loss.lossmath import TableWindowLoss, table_window_loss
from ess_loss.slots import SlotTracker
from ess_tables.links import ClusterLink
from ess_tables.presence import presence, table_bytes

log = logging.getLogger(__name__)


def site_of_device(device: str) -> str:
    return device.split("/", 1)[0]


@dataclass(frozen=True)
class WindowResult:
    table: Table
    window: Window
    loss: TableWindowLoss
    clusters: tuple[str, ...]  # clusters that answered
    table_bytes: Mapping[str, int]


class Evaluator:
    def __init__(
        self,
        links: Mapping[str, ClusterLink],
        tracker: SlotTracker,
        metrics: GapMetrics,
        device_silent_s: int,
    ) -> None:
        self.links = links
        self.tracker = tracker
        self.metrics = metrics
        self.device_silent_s = device_silent_s

    async def presence_of(
        self, cluster: str, table: Table, window: Window, devices: list[str] | None = None
    ) -> dict[str, int] | None:
        link = self.links[cluster]
        conn = await link.get()
        if conn is None:
            return None
        try:
            return await presence(conn, table, window.start, window.end, devices=devices)
        except DB_FAILURES as exc:
            self.metrics.cluster_errors.labels(cluster).inc()
            log.warning("presence query on %s failed: %s", cluster, exc)
            link.failed()
            return None

    async def _sizes(self, table: Table, clusters: list[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for cluster in clusters:
            conn = await self.links[cluster].get()
            if conn is None:
                continue
            try:
                sizes[cluster] = await table_bytes(conn, table)
            except DB_FAILURES as exc:
                log.warning("size of %s on %s unknown: %s", table, cluster, exc)
        return sizes

    async def evaluate(self, table: Table, window: Window) -> WindowResult | None:
        """Loss of every expected device; None when no cluster could be asked."""
        present: dict[str, dict[str, int]] = {}
        for cluster in self.links:
            bits = await self.presence_of(cluster, table, window)
            if bits is not None:
                present[cluster] = bits
        if not present:
            return None
        devices = self.tracker.expected_devices(
            table, window.start_s, window.end_s, self.device_silent_s
        )
        for bits in present.values():
            devices.update(bits)
        kafka = {d: self.tracker.bits(table, d, window.start_s, window.end_s) for d in devices}
        loss = table_window_loss(
            window.length, devices, {d: site_of_device(d) for d in devices}, kafka, present
        )
        sizes = await self._sizes(table, list(present))
        return WindowResult(table, window, loss, tuple(present), sizes)
