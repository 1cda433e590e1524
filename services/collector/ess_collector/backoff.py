"""Capped exponential backoff with jitter, for reconnects and silent devices.

Delay n is drawn uniformly from [base_n / 2, base_n] with base_n =
min(cap, initial * 2**n) ("equal jitter"): it never drops near zero, so a
fleet that lost its network together does not come back in one burst, and it
never exceeds the cap, so a device that returns is seen again soon.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float
    cap_s: float
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        """Delay before the next attempt after one more failure."""
        base = min(self.cap_s, self.initial_s * 2.0 ** min(self.failures, 62))
        self.failures += 1
        return base / 2 + self.rng.random() * base / 2

    def reset(self) -> None:
        self.failures = 0
