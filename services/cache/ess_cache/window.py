"""Which slots the cache accepts, and when its keys expire (pure arithmetic on epoch seconds).

The cache accepts a slot while its UTC day is *open*: the current day, the
`window_days - 1` days before it, and yesterday for `late_s` after midnight.
Only open days have dedupe bitmaps, so only they can be updated exactly; a
reading for a closed day is ignored (counted as too old) and its buckets are
frozen until their TTL ends. A rebuild recomputes exactly the open days.
"""

from __future__ import annotations

from dataclasses import dataclass

from ess_cache_layout.measures import DAY_S, RESOLUTIONS, bucket_start

# Bitmaps outlive the acceptance window by this much, so clock skew between the
# service and Redis cannot let a reading through after its bitmap expired.
SEEN_MARGIN_S = 600


@dataclass(frozen=True)
class Retention:
    ttl_by_resolution: dict[str, int]
    window_days: int
    late_s: int

    def accept_from(self, now: int) -> int:
        """The first slot accepted at `now` (a UTC midnight)."""
        return bucket_start(now - self.late_s, DAY_S) - (self.window_days - 1) * DAY_S

    @property
    def seen_tail_s(self) -> int:
        """A day's bitmap expires this long after the day starts."""
        return self.window_days * DAY_S + self.late_s + SEEN_MARGIN_S

    def bucket_expires_at(self, resolution: str, seconds: int, bucket: int) -> int:
        return bucket + seconds + self.ttl_by_resolution[resolution]

    def script_config(self) -> list[list[int | str]]:
        """Resolutions for the Lua script: `[name, seconds, ttl]`, finest first."""
        return [[r.name, r.seconds, self.ttl_by_resolution[r.name]] for r in RESOLUTIONS]
