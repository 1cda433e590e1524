"""Quantiles of a Prometheus histogram from its cumulative buckets, as `histogram_quantile` does.

Pure. The buckets are the deltas between two scrapes (what happened in between),
so a quantile tells about the last interval, not the whole uptime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """`buckets`: upper bound (`le`, +Inf included) -> cumulative count. None if empty.

    Linear interpolation inside the bucket holding the rank; a rank in the +Inf
    bucket answers the highest finite bound (as Prometheus does).
    """
    bounds = sorted(buckets)
    if not bounds or not 0.0 <= q <= 1.0:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound
