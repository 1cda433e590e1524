"""How a replica learns which sites are its own: all, a static share, or Kafka's group.

`KafkaGroupAssignment` makes the replicas one consumer group on a small
assignment topic (one partition per bucket of sites; nothing is ever
produced to it): Kafka's group coordinator then decides which replica owns
which buckets, moves a dead replica's buckets to the survivors once its
session times out, and gives some back when it returns. A replica changes
its sites only when a new assignment arrives, never on a revocation: during
a rebalance the sites it keeps go on being polled, and a site handed over is
polled for at most one slot by both (the same slot twice: harmless, counted
by the test). While Kafka is unreachable a replica keeps the sites it has,
since collection must not stop with Kafka (that is what the spool is for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ess_collector.site_share import sites_in_buckets, static_share
from ess_common.backoff import Backoff, sleep_unless_stopped

log = logging.getLogger(__name__)

ApplySites = Callable[[frozenset[str]], None]


class SiteAssignment(Protocol):
    async def run(self, apply: ApplySites, stop: asyncio.Event) -> None:
        """Call `apply` with this replica's sites whenever they change, until `stop`."""


class AllSites:
    def __init__(self, sites: Sequence[str]) -> None:
        self._sites = frozenset(sites)

    async def run(self, apply: ApplySites, stop: asyncio.Event) -> None:
        apply(self._sites)
        await stop.wait()


class StaticShare:
    """Replica k of n (the StatefulSet ordinal): a fixed split, no coordination."""

    def __init__(self, sites: Sequence[str], replica: int, replicas: int, buckets: int) -> None:
        self._sites = static_share(sites, replica, replicas, buckets)

    async def run(self, apply: ApplySites, stop: asyncio.Event) -> None:
        apply(self._sites)
        await stop.wait()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_assigned: Callable[[set[int]], None]) -> None:
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None  # keep polling until the new assignment says otherwise

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned({tp.partition for tp in assigned})


class KafkaGroupAssignment:
    def __init__(
        self,
        sites: Sequence[str],
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        buckets: int,
        replication: int,
        session_timeout_s: float,
        retry: Backoff,
    ) -> None:
        """`buckets` partitions are created if the topic is missing; an existing
        topic's own partition count is used."""
        self._sites = tuple(sites)
        self._bootstrap = bootstrap
        self._topic = topic
        self._group_id = group_id
        self._buckets = buckets
        self._replication = replication
        self._session_timeout_ms = int(session_timeout_s * 1000)
        self._retry = retry
        self.generations = 0  # assignments received

    async def run(self, apply: ApplySites, stop: asyncio.Event) -> None:
        def assigned(partitions: set[int]) -> None:
            self.generations += 1
            sites = sites_in_buckets(self._sites, partitions, self._buckets)
            log.info(
                "assignment %d: buckets %s, %d sites",
                self.generations,
                sorted(partitions),
                len(sites),
            )
            apply(sites)

        while not stop.is_set():
            try:
                await self._member(assigned, stop)
            except KafkaError as exc:
                delay = self._retry.next_delay()
                log.warning(
                    "assignment group: %s; keeping the current sites, retry in %.1fs", exc, delay
                )
                await sleep_unless_stopped(stop, delay)

    async def _member(self, assigned: Callable[[set[int]], None], stop: asyncio.Event) -> None:
        await self._ensure_topic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            client_id="ess-collector-assignment",
            enable_auto_commit=False,
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=max(100, self._session_timeout_ms // 4),
            rebalance_timeout_ms=self._session_timeout_ms,
        )
        consumer.subscribe([self._topic], listener=_Listener(assigned))
        await consumer.start()
        try:
            self._retry.reset()
            while not stop.is_set():
                await consumer.getmany(timeout_ms=500)  # drives the group membership
        finally:
            with contextlib.suppress(KafkaError):
                await consumer.stop()  # leaves the group: survivors take over at once

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                topic = NewTopic(self._topic, self._buckets, self._replication)
                await admin.create_topics([topic])
            described = await admin.describe_topics([self._topic])
            self._buckets = len(described[0]["partitions"]) or self._buckets
        finally:
            await admin.close()
