"""The periodic pass over all sites: stale devices, the site summaries, the marker check."""

from __future__ import annotations

import logging
import time

import orjson

from ess_cache.metrics import CacheMetrics
from ess_cache.rules import AnomalyRules
from ess_cache.settings import CacheSettings
from ess_cache.store import RedisStore
from ess_cache.summary import LatestReading, summarize
from ess_common.model import DeviceId

log = logging.getLogger(__name__)


class SitePass:
    def __init__(
        self,
        settings: CacheSettings,
        store: RedisStore,
        rules: AnomalyRules,
        metrics: CacheMetrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.metrics = metrics

    async def run_once(self) -> str | None:
        """One pass; returns the marker generation seen (None: the data is gone)."""
        started = time.perf_counter()
        generation = await self.store.generation()
        if generation is None:
            return None
        now = int(time.time())
        stale = self.rules.device_stale
        for site in await self.store.sites():
            if stale.enabled:
                raised = await self.store.flag_stale(
                    site,
                    now,
                    stale.after_s,
                    self.settings.cache_anomaly_max_entries,
                    self.settings.cache_anomaly_max_age_s,
                )
                if raised > 0:
                    self.metrics.anomalies.labels("device_stale").inc(raised)
            latest = [
                _latest(device, slot, payload)
                for device, slot, payload in await self.store.latest_of_site(site)
            ]
            summary = summarize(site, latest, now, stale.after_s)
            ttl = max(60, int(self.settings.cache_summary_interval_s * 10))
            await self.store.write_summary(site, summary, ttl)
        self.metrics.redis_seconds.labels("site_pass").observe(time.perf_counter() - started)
        return generation


def _latest(device: str, slot: int, payload: bytes | None) -> LatestReading:
    values = orjson.loads(payload).get("values", {}) if payload else {}
    return LatestReading(device, DeviceId.parse(device).table, slot, values)
