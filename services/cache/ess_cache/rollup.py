"""Rolling per-device minute aggregates up into every series and resolution (pure).

The rebuild reads one row per device and minute from SQL and feeds it here;
the merge rules are those of the Lua script, so the buckets come out as the
stream would have built them. Bitmap segments say which slots SQL holds, so
Kafka messages for those slots are recognised as already counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ess_cache.window import Retention
from ess_cache_layout.aggregate import Bucket, merge_into
from ess_cache_layout.keys import series_of
from ess_cache_layout.measures import RESOLUTIONS, bucket_start
from ess_common.model import DeviceId, Table

HOUR_S = 3600


@dataclass(frozen=True)
class MinuteRow:
    device: DeviceId
    minute: int  # epoch seconds, a multiple of 60
    seconds_mask: int  # bit s set = slot minute + s is present
    bucket: Bucket  # measure name -> aggregate of that minute


@dataclass(frozen=True)
class BucketWrite:
    resolution: str
    series: str
    start: int
    table: Table
    bucket: Bucket
    expires_at: int


class Rollup:
    """Open buckets of every series and resolution, filled from minute rows."""

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self._open: dict[tuple[str, str, int], tuple[Table, Bucket]] = {}

    def add(self, row: MinuteRow) -> None:
        for res in RESOLUTIONS:
            start = bucket_start(row.minute, res.seconds)
            for series in series_of(row.device):
                key = (res.name, series, start)
                entry = self._open.get(key)
                if entry is None:
                    entry = self._open[key] = (row.device.table, {})
                merge_into(entry[1], row.bucket)

    def pop_closed(self, until: int) -> list[BucketWrite]:
        """Buckets that end at or before `until` (no later row can touch them)."""
        seconds = {r.name: r.seconds for r in RESOLUTIONS}
        done = [k for k in self._open if k[2] + seconds[k[0]] <= until]
        return [self._pop(k, seconds[k[0]]) for k in done]

    def pop_all(self) -> list[BucketWrite]:
        seconds = {r.name: r.seconds for r in RESOLUTIONS}
        return [self._pop(k, seconds[k[0]]) for k in list(self._open)]

    def _pop(self, key: tuple[str, str, int], seconds: int) -> BucketWrite:
        table, bucket = self._open.pop(key)
        resolution, series, start = key
        expires = self.retention.bucket_expires_at(resolution, seconds, start)
        return BucketWrite(resolution, series, start, table, bucket, expires)


def hour_segments(rows: Iterable[MinuteRow], hour: int) -> dict[str, bytes]:
    """Per device, the bytes of its day bitmap that cover `[hour, hour + 3600)`.

    An hour is 3600 bits = 450 bytes, starting at byte `(hour - day) / 8` of the
    day's bitmap; Redis numbers bits from the most significant one. Trailing
    zero bytes are dropped so the bitmap ends where SETBIT would have ended it.
    """
    bits: dict[str, int] = {}
    for row in rows:
        offset = row.minute - hour
        if not 0 <= offset < HOUR_S:
            raise ValueError(f"minute {row.minute} is outside the hour starting {hour}")
        reversed_mask = int(f"{row.seconds_mask:060b}"[::-1], 2)
        key = row.device.key
        bits[key] = bits.get(key, 0) | reversed_mask << (HOUR_S - offset - 60)
    return {
        device: value.to_bytes(HOUR_S // 8, "big").rstrip(b"\0")
        for device, value in bits.items()
        if value
    }
