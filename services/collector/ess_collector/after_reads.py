"""Work that waits until the slot's reads are done: decoding, readings, spool.

Lateness is read_at - slot, and read_at is when a device's reads completed.
Decoding, building the reading, encoding and spooling it cost more CPU than
the reads themselves, and on one event loop every millisecond spent on them
while other endpoints still read delays those reads. So endpoints hand each
poll's finishing here; it runs when no endpoint is mid-cycle, or at the
latest `max_delay_s` after the oldest item was queued (an endpoint waiting
on a silent unit's timeout does not hold the others' readings back), in
chunks that let replies in between.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_DELAY_S = 0.2
CHUNK = 8  # polls between two yields: a read still under way waits for one chunk at most


class AfterReads:
    def __init__(self, on_drained: Callable[[], None], max_delay_s: float = MAX_DELAY_S) -> None:
        """`on_drained` runs after each drain (the spool's flush)."""
        self._on_drained = on_drained
        self._max_delay_s = max_delay_s
        self._work: collections.deque[Callable[[], None]] = collections.deque()
        self._cycles = 0  # endpoints mid-cycle
        self._oldest = 0.0  # monotonic time the oldest queued item was added
        self._ready = asyncio.Event()

    def cycle_started(self) -> None:
        self._cycles += 1

    def cycle_finished(self) -> None:
        self._cycles -= 1
        if self._cycles == 0 and self._work:
            self._ready.set()

    def add(self, work: Callable[[], None]) -> None:
        if not self._work:
            self._oldest = time.monotonic()
            self._ready.set()  # the run loop starts the delay's clock
        self._work.append(work)

    async def run(self) -> None:
        """Finish queued polls until cancelled (then `drain_now` finishes the rest)."""
        while True:
            if self._work:
                waited = time.monotonic() - self._oldest
                if self._cycles == 0 or waited >= self._max_delay_s:
                    await self._drain()
                    continue
                timeout: float | None = self._max_delay_s - waited
            else:
                timeout = None
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)

    async def _drain(self) -> None:
        work = self._work
        while work:
            for _ in range(min(CHUNK, len(work))):
                _finish(work.popleft())
            if work:
                await asyncio.sleep(0)  # replies waiting in the loop go first
        self._on_drained()

    def drain_now(self) -> None:
        while self._work:
            _finish(self._work.popleft())
        self._on_drained()


def _finish(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # the loop boundary: one bad poll never stops the others'
        log.exception("finishing a poll failed")
