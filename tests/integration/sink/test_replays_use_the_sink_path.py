"""A replay writes through the sink's own path: a row the database refuses is isolated
and dead-lettered (the rest of the replay is written, it does not fail every time it is
asked for), and a slot outside the sink's bounds is dead-lettered, never inserted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry

from ess_common.kafka import ReadingProducer
from ess_common.model import DeviceId
from ess_common.replay import ReplayRequest, SlotRange
from ess_common.settings import CommonSettings
from ess_common.topics import dlq_topic, telemetry_topic
from ess_sink.bootstrap import replay_worker
from ess_sink.settings import ReplaySettings
from ess_tables.schema import migrate
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import sink_settings
from helpers.sinkdata import rack_payload, read_topic, row_count

DEVICE = DeviceId(table="rack", site="site1", bank=1, rack=1)
KEY = DEVICE.key.encode()


async def test_a_replay_isolates_refused_rows_and_keeps_the_slot_bounds(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=1)
    good = [rack_payload(DEVICE, t0 + timedelta(seconds=i)) for i in range(30)]
    refused = rack_payload(
        DEVICE, t0 + timedelta(seconds=40), quality=40_000
    )  # no smallint holds it
    too_old = rack_payload(DEVICE, now - timedelta(hours=3))  # the sink below keeps 2 h
    stream = [*good[:10], refused, *good[10:20], too_old, *good[20:]]
    dsn = await make_database("local")
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    sink = sink_settings(settings, "local", dsn, topic_prefix, unique("g"), sink_max_age_s=2 * 3600)
    worker = replay_worker(sink, CollectorRegistry(), ReplaySettings(group_id=unique("r")))
    request = ReplayRequest(
        cluster="local",
        table="rack",
        slots=SlotRange(start=now - timedelta(hours=4), end=now),
        reason="operator",
        requested_by="test",
    )
    try:
        async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
            topic = telemetry_topic("rack", topic_prefix)
            async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
                for payload in stream:
                    await (await producer.send_raw(topic, payload, KEY))
                counts = await worker.serve(request, conn, producer, stop=asyncio.Event())
            letters = await read_topic(settings.kafka_bootstrap, dlq_topic(topic_prefix))
        assert counts is not None, "the replay failed"
        assert await row_count(dsn) == len(good)
        assert (counts.rows_inserted, counts.dead_lettered) == (len(good), 2)
        reasons = {letter.value: {k: v.decode() for k, v in letter.headers} for letter in letters}
        assert reasons[refused]["reason"] == "db_rejected"
        assert reasons[too_old]["reason"] == "slot_out_of_bounds"
        assert {h["via"] for h in reasons.values()} == {"replay"}
        assert {h["offset"] for h in reasons.values()} == {"10", "21"}
    finally:
        await conn.close()
