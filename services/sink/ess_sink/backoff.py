"""Capped exponential backoff with jitter, for reconnecting to a database that went away."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays initial, 2x, 4x ... up to `cap`, each drawn from [d/2, d] so many sinks spread out."""

    initial_s: float = 0.5
    cap_s: float = 15.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        cap = max(self.cap_s, self.initial_s)
        ceiling = min(cap, self.initial_s * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0
