"""Loss windows, pure: UTC-aligned periods (minute, hour, day) and when each is due.

A window `[start, end)` is evaluated once `end + settle` has passed and the
detector has caught up with Kafka at some moment after that, so late
messages and the sinks' last batches are in before anything is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Period = Literal["minute", "hour", "day"]
PERIOD_SECONDS: dict[Period, int] = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, order=True)
class Window:
    start_s: int  # epoch seconds, aligned to the period
    period: Period

    @property
    def length(self) -> int:
        return PERIOD_SECONDS[self.period]

    @property
    def end_s(self) -> int:
        return self.start_s + self.length

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_s, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_s, UTC)

    def due_at(self, settle_s: float) -> float:
        return self.end_s + settle_s

    def __str__(self) -> str:
        return f"{self.period} {self.start.isoformat()}"


def window_containing(period: Period, epoch_s: int) -> Window:
    length = PERIOD_SECONDS[period]
    return Window(epoch_s - epoch_s % length, period)


def windows_overlapping(period: Period, start_s: int, end_s: int) -> list[Window]:
    """Aligned windows of `period` that overlap `[start_s, end_s)`."""
    if end_s <= start_s:
        return []
    first = window_containing(period, start_s)
    length = PERIOD_SECONDS[period]
    return [Window(s, period) for s in range(first.start_s, end_s, length)]


class WindowScheduler:
    """Which (table, window) pairs are due for evaluation, pure (the caller passes times).

    A window is a candidate when Kafka brought slots for it (`touched`, also
    after it was evaluated: late data makes it due again) or when it closes
    while the detector runs (so a window in which nothing arrived at all is
    still reported). It is due once both `end` and its last new slot are
    `settle_s` old and the detector has caught up with Kafka since then.
    Windows that ended more than `lookback_s` before the detector started
    are left alone.
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
        self._clock_cursor = {p: window_containing(p, int(started_s)).end_s for p in periods}
        self._clock_windows: set[tuple[str, Window]] = set()

    def _candidates(
        self, touched: Sequence[tuple[str, int, float]], now: float
    ) -> dict[tuple[str, Window], float]:
        """Candidate -> time of its last new slot (0 when none)."""
        found: dict[tuple[str, Window], float] = {}
        oldest = self.started_s - self.lookback_s
        for table, slice_start, at in touched:
            for period in self.periods:
                w = window_containing(period, slice_start)
                if w.end_s < oldest:
                    continue
                key = (table, w)
                if at > found.get(key, 0.0):
                    found[key] = at
        for period in self.periods:
            while self._clock_cursor[period] + self.settle_s <= now:
                end = self._clock_cursor[period]
                w = Window(end - PERIOD_SECONDS[period], period)
                self._clock_windows.update((t, w) for t in self.tables)
                self._clock_cursor[period] = end + PERIOD_SECONDS[period]
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
