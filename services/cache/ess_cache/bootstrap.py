"""Wiring the cache: build its adapters from the settings and hand them to the service."""

from __future__ import annotations

import functools

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from ess_cache.metrics import CacheMetrics
from ess_cache.rebuild import Rebuilder
from ess_cache.rules import load_rules
from ess_cache.service import CacheService
from ess_cache.settings import CacheSettings
from ess_cache.sitepass import SitePass
from ess_cache.store import RedisStore
from ess_cache.window import Retention
from ess_common.db import DbTimeouts, connect
from ess_common.kafka import OffsetCommittingConsumer
from ess_common.kafka_offsets import group_committed
from ess_common.topics import telemetry_topic


def bootstrap(settings: CacheSettings, registry: CollectorRegistry) -> CacheService:
    s = settings
    metrics = CacheMetrics(registry)
    rules = load_rules(s.cache_rules_file)
    retention = Retention(s.ttl_by_resolution, s.cache_window_days, s.cache_late_s)
    store = RedisStore(s.redis_url, s.cache_key_prefix, s.cache_redis_timeout_s)
    connect_db = functools.partial(
        connect,
        s.rebuild_dsn,
        timeouts=DbTimeouts(5.0, s.cache_db_command_timeout_s),
        application_name="ess-cache-rebuild",
    )
    consumer = OffsetCommittingConsumer(
        s.kafka_bootstrap,
        s.cache_group_id,
        [telemetry_topic(t, s.topic_prefix) for t in s.cache_tables],
        client_id="ess-cache",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    return CacheService(
        s,
        metrics=metrics,
        rules=rules,
        retention=retention,
        store=store,
        consumer=consumer,
        rebuilder=Rebuilder(s, store, retention, connect_db, functools.partial(_sink_offsets, s)),
        sites=SitePass(s, store, rules, metrics),
    )


async def _sink_offsets(settings: CacheSettings) -> dict[TopicPartition, int]:
    """What the rebuild cluster's sink group has committed on the cache's topics."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="ess-cache-rebuild"
    )
    await admin.start()
    try:
        out: dict[TopicPartition, int] = {}
        for table in settings.cache_tables:
            topic = telemetry_topic(table, settings.topic_prefix)
            committed = await group_committed(admin, settings.rebuild_sink_group, topic)
            out.update({TopicPartition(topic, p): o for p, o in committed.items()})
        return out
    finally:
        await admin.close()
