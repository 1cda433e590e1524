"""The read path for the web side and `essctl cache`: latest, aggregates, anomalies.

Every read is one or two round trips (MGET of the bucket keys of a time
range, XREVRANGE of a feed); nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self, cast

import orjson
import redis.asyncio as aioredis
from pydantic import SecretStr

from ess_cache_layout.aggregate import Bucket, decode_bucket
from ess_cache_layout.keys import Keys, table_of_series
from ess_cache_layout.measures import MEASURES, RESOLUTION_BY_NAME, bucket_start


@dataclass(frozen=True)
class LatestEntry:
    device: str
    slot: int
    reading: dict[str, Any]  # the wire JSON of the newest reading


@dataclass(frozen=True)
class AnomalyEntry:
    id: str  # stream id: milliseconds when it was raised, and a sequence number
    device: str
    slot: int
    rule: str
    value: float
    limit: float


def describe(series: str, bucket: Bucket) -> dict[str, dict[str, float | int]]:
    """Bucket aggregates as a person (or a dashboard) reads them, with the mean."""
    table = table_of_series(series)
    out: dict[str, dict[str, float | int]] = {}
    for m in MEASURES[table]:
        agg = bucket.get(m.name)
        if agg is not None:
            out[m.name] = {
                "count": agg.n,
                "min": agg.min,
                "max": agg.max,
                "mean": agg.mean(m.decimals),
                "first": agg.first,
                "last": agg.last,
                "first_slot": agg.first_slot,
                "last_slot": agg.last_slot,
            }
    return out


class CacheReader:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = Keys(prefix)

    @classmethod
    def connect(cls, url: SecretStr, prefix: str, timeout_s: float = 5.0) -> Self:
        client = aioredis.Redis.from_url(
            url.get_secret_value(), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, prefix)

    async def close(self) -> None:
        await self.redis.aclose()

    async def sites(self) -> list[str]:
        return sorted(_text(s) for s in await self.redis.smembers(self.keys.sites))

    async def latest(self, site: str, device: str | None = None) -> list[LatestEntry]:
        if device is not None:
            raw = await self.redis.get(self.keys.latest(device))
            if raw is None:
                return []
            doc = orjson.loads(raw)
            return [LatestEntry(device, _slot_of(doc), doc)]
        members = cast("list[bytes]", await self.redis.zrange(self.keys.devices(site), 0, -1))
        names = [m.decode() for m in members]
        if not names:
            return []
        payloads = await self.redis.mget([self.keys.latest(d) for d in names])
        return [
            LatestEntry(d, _slot_of(doc), doc)
            for d, raw in zip(names, payloads, strict=True)
            if raw is not None
            for doc in (orjson.loads(raw),)
        ]

    async def newest_slot(self, site: str) -> int | None:
        """The newest slot of any device of `site` (its devices' sorted set), None if none."""
        top = cast(
            "list[tuple[bytes, float]]",
            await self.redis.zrevrange(self.keys.devices(site), 0, 0, withscores=True),
        )
        return int(top[0][1]) if top else None

    async def summary(self, site: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.summary(site))
        return orjson.loads(raw) if raw is not None else None

    async def aggregates(
        self, series: str, resolution: str, start: int, end: int
    ) -> list[tuple[int, Bucket]]:
        """Buckets of `series` at `resolution` starting in `[start, end)`, oldest first."""
        seconds = RESOLUTION_BY_NAME[resolution].seconds
        starts = list(range(bucket_start(start, seconds), end, seconds))
        if not starts:
            return []
        blobs = await self.redis.mget([self.keys.agg(resolution, series, s) for s in starts])
        table = table_of_series(series)
        return [
            (s, decode_bucket(table, blob))
            for s, blob in zip(starts, blobs, strict=True)
            if isinstance(blob, bytes) and s >= start
        ]

    async def anomalies(self, site: str, count: int = 50) -> list[AnomalyEntry]:
        """The newest `count` entries of the site's feed, newest first."""
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self.redis.xrevrange(self.keys.anomalies(site), count=count),
        )
        out = []
        for entry_id, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            out.append(
                AnomalyEntry(
                    entry_id.decode(),
                    f["device"],
                    int(f["slot"]),
                    f["rule"],
                    float(f["value"]),
                    float(f["limit"]),
                )
            )
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _slot_of(doc: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(doc["ts"]).timestamp())
