"""The cache's Redis side: running the scripts, the marker, the rebuild lock.

Thin on purpose: what to write is decided in plan.py (readings) and
rebuild.py (SQL); this module only talks to Redis. Scripts are called with
EVALSHA in one pipeline per batch; after a Redis restart the scripts are
loaded again and the whole pipeline re-run, which the dedupe bitmaps make
harmless.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ess_cache.plan import ScriptCall
from ess_cache.rollup import BucketWrite
from ess_cache.scripts import (
    APPLY_BATCH,
    EXTEND_LOCK,
    FINISH_REBUILD,
    FLAG_STALE,
    RELEASE_LOCK,
)
from ess_cache_layout.aggregate import encode_bucket
from ess_cache_layout.keys import Keys
from ess_common.model import DeviceId

# What "Redis is unavailable, try again later" looks like to callers.
REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)


@dataclass
class ApplyResult:
    generation: str | None  # None: the marker is gone, nothing was applied
    applied: dict[str, int] = field(default_factory=dict)  # by table
    duplicates: dict[str, int] = field(default_factory=dict)  # by table
    raised: dict[str, int] = field(default_factory=dict)  # by rule

    def add(self, reply: dict[str, Any]) -> None:
        for mine, theirs in (
            (self.applied, reply["applied"]),
            (self.duplicates, reply["duplicates"]),
            (self.raised, reply["raised"]),
        ):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + int(n)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RedisStore:
    def __init__(self, url: SecretStr, prefix: str, timeout_s: float) -> None:
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url.get_secret_value(),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self.keys = Keys(prefix)
        self._apply = _Script(APPLY_BATCH)
        self._stale = _Script(FLAG_STALE)
        self._finish = _Script(FINISH_REBUILD)
        self._extend = _Script(EXTEND_LOCK)
        self._release = _Script(RELEASE_LOCK)

    async def close(self) -> None:
        await self.redis.aclose()

    async def apply(self, calls: Sequence[ScriptCall]) -> ApplyResult:
        """Run every call in one pipeline; stops early (generation None) if the marker is gone."""
        for _attempt in range(3):
            async with self.redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(self._apply.sha, 0, self.keys.prefix, *call.args)
                replies = await pipe.execute(raise_on_error=False)
            if any(isinstance(r, NoScriptError) for r in replies):
                await self.redis.script_load(self._apply.source)
                continue
            result = ApplyResult(generation=None)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
                doc = orjson.loads(reply)
                if doc["status"] != 0:
                    return ApplyResult(generation=None)
                result.generation = str(doc["generation"])
                result.add(doc)
            return result
        raise RuntimeError("Redis keeps forgetting the apply script")

    async def _run(self, script: _Script, keys: Sequence[str], args: Sequence[object]) -> Any:
        try:
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
        except NoScriptError:
            await self.redis.script_load(script.source)
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]

    async def generation(self) -> str | None:
        value = await self.redis.hget(self.keys.marker, "generation")
        return _text(value) if value is not None else None

    async def marker(self) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.marker)
        return {_text(k): _text(v) for k, v in raw.items()}

    async def flag_stale(
        self, site: str, now: int, after_s: int, max_entries: int, max_age_s: int
    ) -> int:
        args = (self.keys.prefix, site, now, after_s, max_entries, max_age_s)
        return int(await self._run(self._stale, (), args))

    async def sites(self) -> list[str]:
        return sorted(_text(s) for s in await self.redis.smembers(self.keys.sites))

    async def latest_of_site(self, site: str) -> list[tuple[str, int, bytes | None]]:
        """(device, last slot, latest payload or None) of every device seen at `site`."""
        members = cast(
            "list[tuple[bytes, float]]",
            await self.redis.zrange(self.keys.devices(site), 0, -1, withscores=True),
        )
        devices = [(m.decode(), int(score)) for m, score in members]
        if not devices:
            return []
        payloads = await self.redis.mget([self.keys.latest(d) for d, _ in devices])
        return [
            (d, slot, p if isinstance(p, bytes) else None)
            for (d, slot), p in zip(devices, payloads, strict=True)
        ]

    async def write_summary(self, site: str, summary: dict[str, Any], ttl_s: int) -> None:
        await self.redis.set(self.keys.summary(site), orjson.dumps(summary), ex=ttl_s)

    async def try_lock(self, token: str, ttl_s: int) -> bool:
        return bool(await self.redis.set(self.keys.rebuild_lock, token, nx=True, ex=ttl_s))

    async def extend_lock(self, token: str, ttl_s: int) -> bool:
        return bool(await self._run(self._extend, (self.keys.rebuild_lock,), (token, ttl_s * 1000)))

    async def finish_rebuild(self, token: str, marker: dict[str, str]) -> bool:
        fields = [x for kv in marker.items() for x in kv]
        keys = (self.keys.rebuild_lock, self.keys.marker)
        return bool(await self._run(self._finish, keys, (token, *fields)))

    async def lock_holder(self) -> str | None:
        value = await self.redis.get(self.keys.rebuild_lock)
        return _text(value) if value is not None else None

    # --- rebuild writes -------------------------------------------------------------

    async def clear_window(self, window_from: int) -> int:
        """Remove dedupe bitmaps and buckets from `window_from` on (a day boundary).

        Every resolution divides a day, so a bucket starting before `window_from`
        lies wholly before it and is kept (frozen history the rebuild cannot redo).
        """
        removed = 0
        for kind in ("seen", "agg"):
            doomed: list[bytes] = []
            async for key in self.redis.scan_iter(match=f"{self.keys.prefix}:{kind}:*", count=1000):
                if int(key.rsplit(b":", 1)[1]) >= window_from:
                    doomed.append(key)
                if len(doomed) >= 500:
                    removed += await self.redis.unlink(*doomed)
                    doomed = []
            if doomed:
                removed += await self.redis.unlink(*doomed)
        return removed

    async def write_buckets(self, writes: Sequence[BucketWrite], now: int) -> int:
        live = [w for w in writes if w.expires_at > now]
        for i in range(0, len(live), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for w in live[i : i + 500]:
                    key = self.keys.agg(w.resolution, w.series, w.start)
                    pipe.set(key, encode_bucket(w.table, w.bucket), exat=w.expires_at)
                await pipe.execute()
        return len(live)

    async def write_seen(
        self, day: int, hour: int, segments: dict[str, bytes], expires_at: int
    ) -> None:
        """Write one hour of each device's day bitmap (see rollup.hour_segments)."""
        items = list(segments.items())
        for i in range(0, len(items), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for device, segment in items[i : i + 500]:
                    key = self.keys.seen(device, day)
                    pipe.setrange(key, (hour - day) // 8, segment)
                    pipe.expireat(key, expires_at)
                await pipe.execute()

    async def write_latest(self, latest: Sequence[tuple[DeviceId, int, bytes]], ttl_s: int) -> None:
        """Latest readings, each only if newer than what is there (as the apply script)."""
        for i in range(0, len(latest), 500):
            chunk = latest[i : i + 500]
            async with self.redis.pipeline(transaction=False) as pipe:
                for device, slot, _ in chunk:
                    pipe.zadd(self.keys.devices(device.site), {device.key: slot}, gt=True, ch=True)
                    pipe.sadd(self.keys.sites, device.site)
                changed = (await pipe.execute())[0::2]
            async with self.redis.pipeline(transaction=False) as pipe:
                for (device, _, payload), was_newer in zip(chunk, changed, strict=True):
                    if was_newer:
                        pipe.set(self.keys.latest(device.key), payload, ex=ttl_s)
                await pipe.execute()

    async def release_lock(self, token: str) -> None:
        await self._run(self._release, (self.keys.rebuild_lock,), (token,))
