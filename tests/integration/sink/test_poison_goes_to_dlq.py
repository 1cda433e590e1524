"""Poison, out-of-bounds and database-refused messages go to the DLQ with their reason
and origin; the good messages around them, in the same partition, are written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from ess_common.codec import encode_reading
from ess_common.kafka import ReadingProducer
from ess_common.model import DeviceId, RackValues, Reading
from ess_common.settings import CommonSettings
from ess_common.topics import dlq_topic, telemetry_topic
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import counter_total, run_sink_until, sink_settings
from helpers.sinkdata import read_topic, recent_slot, row_count

DEVICE = DeviceId(table="rack", site="site1", bank=1, rack=1)
KEY = DEVICE.key.encode()


def _rack(ts: datetime) -> Reading:
    return Reading(device=DEVICE, ts=ts, read_at=ts, values=RackValues(soc_pct=50.0, modules=16))


def _with(reading: Reading, **over: object) -> bytes:
    doc = orjson.loads(encode_reading(reading))
    doc.update(over)
    return orjson.dumps(doc)


async def test_bad_messages_are_dead_lettered_and_do_not_block_the_partition(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    t0 = recent_slot(1)
    now = datetime.now(UTC).replace(microsecond=0)
    good = [_rack(t0 + timedelta(seconds=i)) for i in range(40)]
    bad: list[tuple[bytes, str]] = [
        (b"{not json", "not_json"),
        (_with(good[0], values={"soc_pct": "50"}), "bad_field"),
        (_with(good[0], device="site1/bank1/rack2"), "key_mismatch"),  # key says rack1
        (encode_reading(_rack(now + timedelta(hours=2))), "slot_out_of_bounds"),
        (encode_reading(_rack(now - timedelta(days=40))), "slot_out_of_bounds"),
        # Valid JSON and a valid reading, but no PostgreSQL column can hold these:
        (_with(_rack(t0 - timedelta(seconds=1)), values={"alarm_bits": 2**63}), "db_rejected"),
        (_with(_rack(t0 - timedelta(seconds=2)), quality=40_000), "db_rejected"),  # smallint
    ]
    topic = telemetry_topic("rack", topic_prefix)
    stream = [encode_reading(g) for g in good[:10]]
    for i, (payload, _) in enumerate(bad):  # poison between good messages, same key/partition
        stream.append(payload)
        stream.extend(encode_reading(g) for g in good[10 + 4 * i : 14 + 4 * i])
    stream.extend(encode_reading(g) for g in good[10 + 4 * len(bad) :])
    assert len(stream) == len(good) + len(bad)

    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
            acks = [await producer.send_raw(topic, payload, KEY) for payload in stream]
            (partition,) = {(await ack).partition for ack in acks}  # one key, one partition

        dsn = await make_database("local")

        async def all_handled(service: SinkService) -> bool:
            handled = counter_total(service, "rows_written") + counter_total(service, "dlq")
            return handled >= len(stream)

        sink = await run_sink_until(
            sink_settings(settings, "local", dsn, topic_prefix, unique("g")), all_handled
        )
        assert counter_total(sink, "rows_written") == len(good)
        assert await row_count(dsn) == len(good)

        letters = await read_topic(settings.kafka_bootstrap, dlq_topic(topic_prefix), len(bad))
    by_value = {letter.value: letter for letter in letters}
    assert len(letters) == len(bad)
    offsets = {payload: stream.index(payload) for payload, _ in bad}
    for payload, reason in bad:
        letter = by_value[payload]
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["reason"] == reason, headers
        assert headers["detail"]
        assert headers["topic"] == topic
        assert headers["partition"] == str(partition)
        assert int(headers["offset"]) == offsets[payload]
        assert headers["sink"] == "local"
        assert letter.key == KEY
