"""`essctl cache latest` once the site summaries have expired (the cache service is down
or stuck): it says how old the newest data is instead of printing an empty table."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis

from ess_common.codec import encode_reading
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from helpers.cache import essctl_cache, redis_namespace


async def test_latest_without_summaries_says_how_old_the_newest_data_is(
    settings: CommonSettings,
) -> None:
    newest = int(time.time()) - 900  # a quarter of an hour ago; summaries live 60 s
    start = datetime.fromtimestamp(newest, UTC)
    reading = next(r for r in readings(seed_fleet(), start, 1) if r.device.site == "site1")
    async with redis_namespace(settings.redis_url.get_secret_value()) as ns:
        client = aioredis.Redis.from_url(ns.url)
        try:
            await client.sadd(f"{ns.prefix}:sites", "site1")
            await client.zadd(f"{ns.prefix}:devices:site1", {reading.device.key: newest})
            await client.set(f"{ns.prefix}:latest:{reading.device.key}", encode_reading(reading))
        finally:
            await client.aclose()
        env = os.environ | {"ESS_REDIS_URL": ns.url, "ESS_CACHE_KEY_PREFIX": ns.prefix}

        text = (await essctl_cache(env, "latest"))["text"]
        assert "site1" in text
        assert "no summary" in text
        age = int(text.split("newest data ")[1].split(" s old")[0])
        assert 900 <= age < 960

        doc = await essctl_cache(env, "latest", "--json")
        assert doc["sites"] == []
        (stale,) = doc["without_summary"]
        assert stale["site"] == "site1"
        assert stale["newest_slot"] == newest
        assert 900 <= stale["age_s"] < 960

        one = (await essctl_cache(env, "latest", "--site", "site1"))["text"]
        assert "no summary" in one
        assert reading.device.key in one
