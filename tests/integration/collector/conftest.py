"""Fixtures of the collector's integration tests (helpers live in collectorrun.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ess_common.topics import all_topics


@pytest.fixture
async def telemetry_prefix(
    kafka_admin: AIOKafkaAdminClient, topic_prefix: str
) -> AsyncIterator[str]:
    """This test's topics on the local stack's Kafka; deleted afterwards."""
    topics = all_topics(topic_prefix)
    await kafka_admin.create_topics([NewTopic(t, 3, 1) for t in topics])
    try:
        yield topic_prefix
    finally:
        await kafka_admin.delete_topics(topics)
