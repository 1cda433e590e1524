"""Staging: readings held in memory per partition-day until the next flush makes them durable.

Each partition-day has the set of slots already archived (`DayKeys`), loaded
from the archive the first time the day is touched; a reading whose slot is
in it is a duplicate (a replay, or the re-read after a crash of what was
archived but not yet committed) and is dropped. So a reading is archived
once, as the clusters keep it once (first write wins). No I/O here: the
service loads the keys the stager asks for (`unknown_days`) before adding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from ess_archive_layout.keys import DAY_S, DayKeys
from ess_archive_layout.layout import PartitionDay
from ess_common.model import TABLES, Table
from ess_tables.rows import columns
from ess_tables.wire_rows import Row

DEVICE_AT, SITE_AT = 0, 1  # positions in every table's row (`ess_tables.rows.columns`)
TS_INDEX = {table: columns(table).index("ts") for table in TABLES}


def _utc_date(epoch_day: int) -> date:
    return datetime.fromtimestamp(epoch_day * DAY_S, UTC).date()


DayKey = tuple[Table, str, int]  # (table, site, UTC day as days since the epoch)


class Stager:
    def __init__(self) -> None:
        self.keys: dict[PartitionDay, DayKeys] = {}
        self.rows: dict[PartitionDay, list[Row]] = {}
        self.count = 0
        # the same days by a plain tuple: hashing it is cheaper than a dataclass, per reading
        self._loaded: dict[DayKey, tuple[PartitionDay, DayKeys]] = {}
        self._staged: dict[DayKey, list[Row]] = {}

    def unknown_days(self, table: Table, rows: Iterable[Row]) -> set[PartitionDay]:
        """Partition-days of `rows` whose archived slots are not loaded yet."""
        ts_at = TS_INDEX[table]
        days = {(table, r[SITE_AT], int(r[ts_at].timestamp()) // DAY_S) for r in rows}
        return {PartitionDay(t, site, _utc_date(d)) for t, site, d in days - self._loaded.keys()}

    def load(self, pd: PartitionDay, keys: DayKeys) -> None:
        self.keys[pd] = keys
        self._loaded[(pd.table, pd.site, pd.start_s // DAY_S)] = (pd, keys)

    def add(self, table: Table, rows: Sequence[Row]) -> tuple[int, int]:
        """Stage the rows whose slot is new; returns (staged, duplicates)."""
        ts_at = TS_INDEX[table]
        loaded, staged_by_day = self._loaded, self._staged
        staged = 0
        for row in rows:
            epoch_s = int(row[ts_at].timestamp())
            day = (table, row[SITE_AT], epoch_s // DAY_S)
            pd, keys = loaded[day]
            if keys.add_second(row[DEVICE_AT], epoch_s):
                staged_rows = staged_by_day.get(day)
                if staged_rows is None:
                    staged_rows = staged_by_day[day] = self.rows[pd] = []
                staged_rows.append(row)
                staged += 1
        self.count += staged
        return staged, len(rows) - staged

    def pending(self) -> list[PartitionDay]:
        return sorted(self.rows)

    def done(self, pd: PartitionDay) -> None:
        """`pd`'s staged rows are durable (listed in its manifest)."""
        self.count -= len(self.rows.pop(pd, ()))
        self._staged.pop((pd.table, pd.site, pd.start_s // DAY_S), None)

    def forget(self) -> None:
        """Drop everything (abandoned batch, lost partitions): the slots are loaded again
        from the archive, so what was not made durable is archived when read again."""
        self.keys.clear()
        self.rows.clear()
        self._loaded.clear()
        self._staged.clear()
        self.count = 0

    def forget_idle_days(self, keep: int) -> None:
        """Bound memory: drop the loaded slots of days with nothing staged, oldest first,
        beyond the `keep` most recent (a dropped day is loaded again when touched)."""
        idle = sorted((pd for pd in self.keys if pd not in self.rows), key=lambda p: p.day)
        for pd in idle[: max(0, len(self.keys) - keep)]:
            del self.keys[pd]
            del self._loaded[(pd.table, pd.site, pd.start_s // DAY_S)]
