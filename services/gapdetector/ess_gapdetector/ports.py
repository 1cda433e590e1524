"""What the detector's loop needs from the outside world, as protocols.

`bootstrap` builds the real adapters (`kafka_feed`, `clusters`); unit tests
pass in-memory fakes with the same shape.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ess_archive_layout.compare import RestoreTotals
from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_common.replay import ReplayRequest, ReplayStatus
from ess_gapdetector.state import DetectorState
from ess_loss.service_time import FleetRegistry
from ess_tables.crosssync import SlotGap, SyncTotals


class SlotSource(Protocol):
    """Telemetry slots into the tracker, and how far behind Kafka the detector is."""

    caught_up_at: float  # latest moment whose end offsets the positions have passed
    lag: int

    async def start(
        self, rebuild_from: datetime, positions: Mapping[str, int] | None = None
    ) -> None: ...
    async def stop(self) -> None: ...
    async def poll(self, timeout_ms: int) -> int: ...
    async def check_caught_up(self) -> int: ...
    async def commit(self) -> None: ...
    async def positions(self) -> dict[str, int]: ...


class SinkGroups(Protocol):
    """How far each cluster's sink group has committed (partition -> offset)."""

    async def committed(self, table: Table) -> dict[Cluster, dict[int, int]]: ...
    async def close(self) -> None: ...


class StatusSource(Protocol):
    """The sinks' answers to replay requests."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def statuses(
        self, timeout_ms: int = 0, request_id: str | None = None
    ) -> list[ReplayStatus]: ...


class RequestSink(Protocol):
    """Where replay requests go (the control topic)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, request: ReplayRequest) -> None: ...


class KafkaRetention(Protocol):
    async def covers(self, table: Table, since: datetime) -> bool:
        """Whether Kafka still holds every record of `table` written since `since`."""


class ArchiveRestore(Protocol):
    """Copies slots from the Parquet archive into a cluster; None when it could not."""

    async def restore(
        self, target: Cluster, table: Table, gaps: list[SlotGap], chunk_rows: int
    ) -> RestoreTotals | None: ...


class ClusterAccess(Protocol):
    """The clusters as the detector asks them; a cluster that cannot answer gives None."""

    names: tuple[Cluster, ...]

    def up(self) -> list[Cluster]: ...
    async def prepare(self) -> None: ...
    async def presence(
        self,
        cluster: Cluster,
        table: Table,
        start: datetime,
        end: datetime,
        devices: Collection[str] | None = None,
    ) -> dict[str, int] | None: ...
    async def table_bytes(self, cluster: Cluster, table: Table) -> int | None: ...
    async def store_report(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    async def copy(
        self, source: Cluster, target: Cluster, table: Table, gaps: list[SlotGap], chunk_rows: int
    ) -> SyncTotals | None: ...
    async def registry(self) -> FleetRegistry | None: ...
    async def save_state_on(
        self, cluster: Cluster, group: str, state: DetectorState, forget_before_s: int
    ) -> bool: ...
    async def load_state(
        self, group: str, since_s: int, tables: tuple[Table, ...]
    ) -> DetectorState | None: ...
    async def close(self) -> None: ...
