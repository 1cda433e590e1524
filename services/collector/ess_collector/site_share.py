"""Which sites this collector replica polls: pure arithmetic.

Sites are hashed (CRC-32 of the site id, stable across processes and
versions) onto `partitions` buckets. With Kafka's group protocol each bucket
is a partition of the assignment topic and a replica polls the sites of the
partitions the group gave it; with a static split, replica k of n polls the
buckets b with b % n == k.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def site_bucket(site_id: str, buckets: int) -> int:
    return zlib.crc32(site_id.encode()) % buckets


def sites_in_buckets(sites: Iterable[str], owned: Iterable[int], buckets: int) -> frozenset[str]:
    mine = frozenset(owned)
    return frozenset(site for site in sites if site_bucket(site, buckets) in mine)


def static_share(sites: Iterable[str], replica: int, replicas: int, buckets: int) -> frozenset[str]:
    """Replica `replica` (0-based, e.g. a StatefulSet ordinal) of `replicas`."""
    owned = (b for b in range(buckets) if b % replicas == replica)
    return sites_in_buckets(sites, owned, buckets)


def ordinal_of(hostname: str) -> int | None:
    """The StatefulSet ordinal at the end of a pod's hostname (`collector-2` -> 2)."""
    head, _, tail = hostname.rpartition("-")
    return int(tail) if head and tail.isdigit() else None
