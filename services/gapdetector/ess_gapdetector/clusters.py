"""The detector's access to both clusters: presence, table sizes, the loss report, gap copies.

Every call goes through the cluster's `ClusterLink`. A cluster that is down,
or a query that fails, answers None: the failure is counted and logged, the
link reconnects next time, and the detector carries on with the other
cluster, so one cluster down never stops the report on the other.

`loss_report` is the detector's own table (daily figures of both clusters in
each): created if missing, rows upserted, so a re-evaluated day overwrites.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from ess_common.clusters import Cluster
from ess_common.db_errors import DB_FAILURES
from ess_common.logs import error_line
from ess_common.model import Table
from ess_gapdetector.metrics import GapMetrics
from ess_gapdetector.state import DetectorState, load_state, save_state, saved_at
from ess_loss.service_time import FleetRegistry
from ess_tables.crosssync import SlotGap, SyncTotals, copy_gaps
from ess_tables.links import ClusterLink
from ess_tables.presence import presence, table_bytes
from ess_tables.registry import load as load_registry

log = logging.getLogger(__name__)

T = TypeVar("T")

LOSS_REPORT_DDL = """
CREATE TABLE IF NOT EXISTS loss_report (
    period text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    cluster text NOT NULL,
    table_name text NOT NULL,
    site text NOT NULL,
    device_id text NOT NULL,
    expected bigint NOT NULL,
    reached bigint NOT NULL,
    present bigint NOT NULL,
    source_loss_pct double precision NOT NULL,
    sink_loss_pct double precision NOT NULL,
    loss_pct double precision NOT NULL,
    severity text NOT NULL,
    table_bytes bigint,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period, period_start, cluster, table_name, site, device_id)
)
"""

# columns added with the fleet registry (lag-aware loss, maintenance, site time zones)
LOSS_REPORT_COLUMNS = (
    "ALTER TABLE loss_report ADD COLUMN IF NOT EXISTS pending bigint NOT NULL DEFAULT 0",
    "ALTER TABLE loss_report ADD COLUMN IF NOT EXISTS maintenance bigint NOT NULL DEFAULT 0",
    "ALTER TABLE loss_report ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT 'UTC'",
    "ALTER TABLE loss_report ADD COLUMN IF NOT EXISTS final boolean NOT NULL DEFAULT true",
)

_UPSERT = """
INSERT INTO loss_report (period, period_start, period_end, cluster, table_name, site,
    device_id, expected, reached, present, source_loss_pct, sink_loss_pct, loss_pct,
    severity, table_bytes, pending, maintenance, time_zone, final)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (period, period_start, cluster, table_name, site, device_id) DO UPDATE SET
    pending = EXCLUDED.pending, maintenance = EXCLUDED.maintenance,
    time_zone = EXCLUDED.time_zone, final = EXCLUDED.final,
    period_end = EXCLUDED.period_end, expected = EXCLUDED.expected,
    reached = EXCLUDED.reached, present = EXCLUDED.present,
    source_loss_pct = EXCLUDED.source_loss_pct, sink_loss_pct = EXCLUDED.sink_loss_pct,
    loss_pct = EXCLUDED.loss_pct, severity = EXCLUDED.severity,
    table_bytes = EXCLUDED.table_bytes, computed_at = now()
"""


class LinkedClusters:
    def __init__(self, links: Mapping[Cluster, ClusterLink], metrics: GapMetrics) -> None:
        self.links = links
        self.names: tuple[Cluster, ...] = tuple(links)
        self._metrics = metrics

    def up(self) -> list[Cluster]:
        return [c for c, link in self.links.items() if link.up]

    async def ask(
        self, cluster: Cluster, what: str, call: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T | None:
        """`call(connection)` on `cluster`; None when it is down or the call failed (counted,
        logged, reconnected next time)."""
        link = self.links[cluster]
        conn = await link.get()
        if conn is None:
            return None
        try:
            return await call(conn)
        except DB_FAILURES as exc:
            self._metrics.cluster_errors.labels(cluster).inc()
            log.warning("%s on %s failed: %s", what, cluster, error_line(exc))
            link.failed()
            return None

    async def prepare(self) -> None:
        """Create `loss_report` where it is missing (on every cluster reachable now)."""
        for cluster in self.names:
            await self.ask(cluster, "creating loss_report", _ensure_loss_report)

    async def presence(
        self,
        cluster: Cluster,
        table: Table,
        start: datetime,
        end: datetime,
        devices: Collection[str] | None = None,
    ) -> dict[str, int] | None:
        return await self.ask(
            cluster,
            f"presence query of {table}",
            lambda conn: presence(conn, table, start, end, devices=devices),
        )

    async def table_bytes(self, cluster: Cluster, table: Table) -> int | None:
        return await self.ask(cluster, f"size of {table}", lambda conn: table_bytes(conn, table))

    async def store_report(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Upsert `rows` into `loss_report` on every reachable cluster."""

        async def upsert(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await _ensure_loss_report(conn)
                await conn.executemany(_UPSERT, rows)

        for cluster in self.names:
            await self.ask(cluster, "storing loss_report", upsert)

    async def registry(self) -> FleetRegistry | None:
        """The fleet registry of the first cluster that answers (both hold the same)."""
        for cluster in self.names:
            found = await self.ask(cluster, "reading the fleet registry", load_registry)
            if found is not None:
                return found
        return None

    async def save_state(self, group: str, state: DetectorState, forget_before_s: int) -> bool:
        """Save on every reachable cluster; False where it could not (retried later)."""
        saved = True
        for cluster in self.names:
            done = await self.save_state_on(cluster, group, state, forget_before_s)
            saved = saved and done
        return saved

    async def save_state_on(
        self, cluster: Cluster, group: str, state: DetectorState, forget_before_s: int
    ) -> bool:
        async def save(conn: asyncpg.Connection) -> bool:
            await save_state(conn, group, state, forget_before_s)
            return True

        return bool(await self.ask(cluster, "saving the detector's state", save))

    async def load_state(
        self, group: str, since_s: int, tables: tuple[Table, ...]
    ) -> DetectorState | None:
        """The newest saved state of any reachable cluster."""
        newest: tuple[datetime, Cluster] | None = None
        for cluster in self.names:
            at = await self.ask(
                cluster, "reading the detector's state", lambda c: saved_at(c, group)
            )
            if at is not None and (newest is None or at > newest[0]):
                newest = (at, cluster)
        if newest is None:
            return None
        return await self.ask(
            newest[1],
            "loading the detector's state",
            lambda conn: load_state(conn, group, since_s, tables),
        )

    async def copy(
        self, source: Cluster, target: Cluster, table: Table, gaps: list[SlotGap], chunk_rows: int
    ) -> SyncTotals | None:
        """Copy the rows of `gaps` from `source` to `target`; None when it could not."""
        src, dst = await self.links[source].get(), await self.links[target].get()
        if src is None or dst is None:
            return None
        try:
            return await copy_gaps(src, dst, table, gaps, chunk_rows=chunk_rows)
        except DB_FAILURES as exc:
            # either side may have failed: each link sees a closed connection itself
            log.warning("sync %s -> %s of %s failed: %s", source, target, table, error_line(exc))
            return None

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()


async def _ensure_loss_report(conn: asyncpg.Connection) -> None:
    await conn.execute(LOSS_REPORT_DDL)
    for ddl in LOSS_REPORT_COLUMNS:
        await conn.execute(ddl)
