"""Scrape the targets' /metrics and show frames: one, as JSON, live in place, or as lines.

Shared by `essctl status` and `make run`'s view. The live screen redraws in
place when stdout is a terminal; otherwise each frame is printed as plain lines
through `emit` (which `make run` makes safe against a closed stdout). `tick` is
called every 0.2 s between frames (the supervisor restarts services there); the
lines it returns are shown as events.
"""

from __future__ import annotations

import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.live import Live

from ess_status.frame import build_frame
from ess_status.render import plain_lines, render

TICK_S = 0.2
EVENTS_SHOWN = 5


def scrape(url: str, timeout_s: float = 2.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (our targets)
            text: str = resp.read().decode()
            return text
    except OSError:
        return None


class Watch:
    """Frames from `targets` (name -> /metrics URL), each against the previous scrape."""

    def __init__(self, targets: Mapping[str, str], links: Mapping[str, str]) -> None:
        self.targets, self.links = dict(targets), dict(links)
        self._previous: dict[str, str | None] | None = None
        self._since = 0.0

    def scrape_all(self) -> dict[str, str | None]:
        return {name: scrape(url) for name, url in self.targets.items()}

    def frame(self) -> dict[str, Any]:
        current, now = self.scrape_all(), time.monotonic()
        frame = build_frame(current, self._previous, now - self._since, self.links)
        self._previous, self._since = current, now
        return frame


def _never() -> bool:
    return False


def show_live(
    watch: Watch,
    interval_s: float,
    *,
    tty: bool,
    emit: Callable[[str], None] = print,
    tick: Callable[[], list[str]] | None = None,
    stopping: Callable[[], bool] = _never,
) -> None:
    """Until `stopping()`: a frame every `interval_s`; in place on a terminal, else as lines."""
    events: deque[str] = deque(maxlen=EVENTS_SHOWN)

    def wait() -> None:
        deadline = time.monotonic() + interval_s
        while not stopping() and time.monotonic() < deadline:
            for event in tick() if tick else []:
                line = time.strftime("%H:%M:%S ") + event
                events.append(line)
                if not tty:
                    emit(line)
            time.sleep(TICK_S)

    if not tty:
        while not stopping():
            for line in [time.strftime("%H:%M:%S"), *plain_lines(watch.frame())]:
                emit(line)
            wait()
        return
    with Live(render(watch.frame(), events), console=Console(), auto_refresh=False) as live:
        while not stopping():
            wait()
            if not stopping():
                live.update(render(watch.frame(), events), refresh=True)
