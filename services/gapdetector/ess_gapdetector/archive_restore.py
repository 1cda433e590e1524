"""The detector's last fallback: slots neither Kafka nor the other cluster can give back,
restored from the Parquet archive (`ess_archive_layout.compare.restore_gaps`, the same
code as `essctl archive restore`) into the cluster that lacks them.

An archive or cluster that cannot answer gives None: the failure is logged once and the
gap is reported as not closed, as for a failed sync; the next evaluation tries again.
"""

from __future__ import annotations

import logging

from ess_archive_layout.compare import RestoreTotals, restore_gaps
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.store import ArchiveError
from ess_common.clusters import Cluster
from ess_common.model import Table
from ess_gapdetector.clusters import LinkedClusters
from ess_tables.crosssync import SlotGap

log = logging.getLogger(__name__)


class ArchiveRestorer:
    def __init__(self, reader: ArchiveReader, clusters: LinkedClusters) -> None:
        self.reader = reader
        self.clusters = clusters

    async def restore(
        self, target: Cluster, table: Table, gaps: list[SlotGap], chunk_rows: int
    ) -> RestoreTotals | None:
        try:
            return await self.clusters.ask(
                target,
                f"restoring {table} from the archive",
                lambda conn: restore_gaps(self.reader, conn, table, gaps, chunk_rows),
            )
        except ArchiveError as exc:
            log.warning("restoring %s into %s from the archive failed: %s", table, target, exc)
            return None
