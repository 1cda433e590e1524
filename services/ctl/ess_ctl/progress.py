"""A progress line on stderr for long operations (replay, sync, Kafka scans).

On a terminal it rewrites one line; otherwise it prints a line at most every
few seconds, so logs of scripted runs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    def __init__(self, label: str, stream: TextIO | None = None, every_s: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s if self.tty else max(every_s, 5.0)
        self._last = 0.0
        self._started = time.monotonic()
        self._shown = False

    def update(self, done: int, total: int | None = None, detail: str = "") -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self._write(done, total, detail)

    def _write(self, done: int, total: int | None, detail: str) -> None:
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if total:
            filled = min(20, int(20 * done / total))
            bar = "#" * filled + "." * (20 - filled)
            head = f"{self.label} [{bar}] {done:,}/{total:,}"
        else:
            head = f"{self.label} {done:,}"
        line = f"{head} {rate:,.0f}/s {detail}".rstrip()
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(80))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def finish(self, done: int, total: int | None = None, detail: str = "") -> None:
        self._write(done, total, detail)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
