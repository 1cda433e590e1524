"""One retry vocabulary: a capped, jittered backoff and a stop-aware sleep.

Delay n is drawn uniformly from [base_n / 2, base_n] with base_n =
min(cap, initial * 2**n) ("equal jitter"): it never drops near zero, so a
fleet (of devices, sinks, caches) that lost its peer together does not come
back in one burst, and it never exceeds the cap, so a peer that returns is
seen again soon. Used for reconnects to databases, Kafka, Redis and devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.5
    cap_s: float = 15.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0  # consecutive failures since the last success

    def next_delay(self) -> float:
        """Delay before the next attempt after one more failure."""
        cap = max(self.cap_s, self.initial_s)
        base = min(cap, self.initial_s * 2.0 ** min(self.failures, 62))
        self.failures += 1
        return base / 2 + self.rng.random() * base / 2

    def reset(self) -> None:
        self.failures = 0


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, waking early when `stop` is set. True: stop was requested."""
    if not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
