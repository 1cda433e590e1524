"""Loss windows, pure: periods (minute, hour, day) and when each is due.

Minute and hour windows are UTC-aligned. Day windows follow a time zone (the
sites' zones in the fleet registry, UTC by default): a site in Asia/Seoul is
judged on its local day, 15:00-15:00 UTC. A window `[start, end)` is evaluated
once `end + settle` has passed and the detector has caught up with Kafka at
some moment after that (its position past the end offsets seen then), so late
messages and the sinks' last batches are in before anything is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ess_loss.service_time import DEFAULT_ZONE, local_day_bounds

Period = Literal["minute", "hour", "day"]
PERIOD_SECONDS: dict[Period, int] = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, order=True)
class Window:
    start_s: int  # epoch seconds, aligned to the period (days: local midnight of `zone`)
    period: Period
    zone: str = DEFAULT_ZONE  # only day windows use it

    @property
    def length(self) -> int:
        return self.end_s - self.start_s

    @property
    def end_s(self) -> int:
        if self.period == "day" and self.zone != DEFAULT_ZONE:
            return local_day_bounds(self.zone, self.start_s)[1]
        return self.start_s + PERIOD_SECONDS[self.period]

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_s, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_s, UTC)

    def due_at(self, settle_s: float) -> float:
        return self.end_s + settle_s

    def __str__(self) -> str:
        zone = f" {self.zone}" if self.zone != DEFAULT_ZONE else ""
        return f"{self.period} {self.start.isoformat()}{zone}"


def window_containing(period: Period, epoch_s: int, zone: str = DEFAULT_ZONE) -> Window:
    if period == "day" and zone != DEFAULT_ZONE:
        return Window(local_day_bounds(zone, epoch_s)[0], period, zone)
    length = PERIOD_SECONDS[period]
    return Window(epoch_s - epoch_s % length, period)


def windows_overlapping(
    period: Period, start_s: int, end_s: int, zone: str = DEFAULT_ZONE
) -> list[Window]:
    """Aligned windows of `period` (days of `zone`) that overlap `[start_s, end_s)`."""
    out: list[Window] = []
    cursor = start_s
    while cursor < end_s:
        w = window_containing(period, cursor, zone)
        out.append(w)
        cursor = w.end_s
    return out


class WindowScheduler:
    """Which (table, window) pairs are due for evaluation, pure (the caller passes times).

    A window is a candidate when Kafka brought slots for it (`touched`, also
    after it was evaluated: late data makes it due again) or when it closes
    while the detector runs (so a window in which nothing arrived at all is
    still reported). It is due once both `end` and its last new slot are
    `settle_s` old and the detector has caught up with Kafka since then.
    Windows that ended more than `lookback_s` before the detector started
    are left alone. Day windows exist once per zone in `zones` (the caller
    keeps it in step with the registry).
    """

    def __init__(
        self,
        periods: tuple[Period, ...],
        tables: tuple[str, ...],
        settle_s: float,
        started_s: float,
        lookback_s: float,
    ) -> None:
        self.periods = periods
        self.tables = tables
        self.settle_s = settle_s
        self.started_s = started_s
        self.lookback_s = lookback_s
        self.evaluated: dict[tuple[str, Window], float] = {}
        self._clock_cursor: dict[tuple[Period, str], int] = {}
        self._clock_windows: set[tuple[str, Window]] = set()
        self.zones: frozenset[str] = frozenset()
        self.set_zones({DEFAULT_ZONE})

    def set_zones(self, zones: set[str]) -> None:
        """The zones day windows follow; a new zone's days start with the current one."""
        self.zones = frozenset(zones | {DEFAULT_ZONE})
        for period in self.periods:
            for zone in self._zones_of(period):
                if (period, zone) not in self._clock_cursor:
                    start = window_containing(period, int(self.started_s), zone)
                    self._clock_cursor[(period, zone)] = start.end_s

    def _zones_of(self, period: Period) -> frozenset[str]:
        return self.zones if period == "day" else frozenset({DEFAULT_ZONE})

    def _candidates(
        self, touched: Sequence[tuple[str, int, float]], now: float
    ) -> dict[tuple[str, Window], float]:
        """Candidate -> time of its last new slot (0 when none)."""
        found: dict[tuple[str, Window], float] = {}
        oldest = self.started_s - self.lookback_s
        for table, slice_start, at in touched:
            for period in self.periods:
                for zone in self._zones_of(period):
                    w = window_containing(period, slice_start, zone)
                    if w.end_s < oldest:
                        continue
                    key = (table, w)
                    if at > found.get(key, 0.0):
                        found[key] = at
        for (period, zone), cursor in list(self._clock_cursor.items()):
            end = cursor
            while end + self.settle_s <= now:
                w = window_containing(period, end - 1, zone)
                self._clock_windows.update((t, w) for t in self.tables)
                end = window_containing(period, end, zone).end_s
            self._clock_cursor[(period, zone)] = end
        for key in self._clock_windows:
            found.setdefault(key, 0.0)
        return found

    def due(
        self, touched: Sequence[tuple[str, int, float]], now: float, caught_up_at: float
    ) -> list[tuple[str, Window]]:
        """Pairs to evaluate now, oldest and shortest first."""
        ready = []
        for key, last_slot_at in self._candidates(touched, now).items():
            done_at = self.evaluated.get(key)
            if done_at is not None and done_at >= last_slot_at:
                continue
            ready_at = max(key[1].end_s, last_slot_at) + self.settle_s
            if now >= ready_at and caught_up_at >= ready_at:
                ready.append(key)
        return sorted(ready, key=lambda k: (k[1].end_s, k[1].length, k[0]))

    def mark_evaluated(self, table: str, window: Window, at: float) -> None:
        self.evaluated[(table, window)] = at
        self._clock_windows.discard((table, window))

    def invalidate(self, table: str, window: Window) -> None:
        """Evaluate again (e.g. after a gap in it was healed)."""
        if self.evaluated.pop((table, window), None) is not None:
            self._clock_windows.add((table, window))

    def forget_before(self, cutoff_s: float) -> None:
        for key in [k for k in self.evaluated if k[1].end_s < cutoff_s]:
            del self.evaluated[key]
        self._clock_windows = {k for k in self._clock_windows if k[1].end_s >= cutoff_s}
