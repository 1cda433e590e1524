"""Decoding a fetch into a batch: every message lands in exactly one place."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from aiokafka import ConsumerRecord, TopicPartition

from ess_common.codec import encode_reading
from ess_common.model import DeviceId, RackValues, Reading
from ess_sink.consume import collect_batch
from ess_tables.batch import (
    SLOT_OUT_OF_BOUNDS,
    BatchDecoder,
    DecodedBatch,
    SlotBounds,
    decode_batch,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PREFIX = "unit"
RACK_TOPIC = f"{PREFIX}.telemetry.rack"


def _reading(ts: datetime, rack: int = 1) -> Reading:
    return Reading(
        device=DeviceId(table="rack", site="s1", bank=1, rack=rack),
        ts=ts,
        read_at=ts,
        values=RackValues(soc_pct=50.0),
    )


Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def _record(
    offset: int, value: bytes, key: bytes | None = b"s1/bank1/rack1", partition: int = 0
) -> Record:
    record: Record = ConsumerRecord(
        RACK_TOPIC, partition, offset, 0, 0, key, value, None, 0, len(value), []
    )
    return record


def test_bounds_are_inclusive_and_explain_themselves() -> None:
    bounds = SlotBounds(max_future=timedelta(seconds=300), max_age=timedelta(days=30))
    assert bounds.violation(NOW + timedelta(seconds=300), NOW) is None
    assert bounds.violation(NOW - timedelta(days=30), NOW) is None
    ahead = bounds.violation(NOW + timedelta(seconds=301), NOW)
    assert ahead is not None
    assert "301s in the future" in ahead
    old = bounds.violation(NOW - timedelta(days=30, seconds=1), NOW)
    assert old is not None
    assert "old" in old


def test_poison_and_out_of_bounds_are_set_apart_and_their_offsets_still_count() -> None:
    good = encode_reading(_reading(NOW))
    future = encode_reading(_reading(NOW + timedelta(hours=1)))
    ancient = encode_reading(_reading(NOW - timedelta(days=31)))
    tp = TopicPartition(RACK_TOPIC, 0)
    fetched = {
        tp: [
            _record(10, good),
            _record(11, b"{broken"),
            _record(12, future),
            _record(13, ancient),
            _record(14, good, key=b"s1/bank1/rack2"),
            _record(15, good),
        ]
    }
    batch = decode_batch(fetched, PREFIX, SlotBounds(), now=NOW)
    assert len(batch.rows["rack"]) == 2
    assert [r.offset for r in batch.tables["rack"].origins] == [10, 15]
    assert [(p.record.offset, p.reason) for p in batch.poison] == [
        (11, "not_json"),
        (12, SLOT_OUT_OF_BOUNDS),
        (13, SLOT_OUT_OF_BOUNDS),
        (14, "key_mismatch"),
    ]
    assert batch.last_offsets == {tp: 15}
    assert batch.size == 6


def test_a_batch_accumulates_several_fetches() -> None:
    decoder = BatchDecoder(PREFIX, SlotBounds())
    batch = DecodedBatch()
    wire = encode_reading(_reading(NOW))
    decoder.add(batch, {TopicPartition(RACK_TOPIC, 0): [_record(0, wire)]}, NOW)
    decoder.add(batch, {TopicPartition(RACK_TOPIC, 1): [_record(7, wire, partition=1)]}, NOW)
    decoder.add(batch, {TopicPartition(RACK_TOPIC, 0): [_record(1, wire)]}, NOW)
    assert len(batch.rows["rack"]) == 3
    assert batch.last_offsets == {
        TopicPartition(RACK_TOPIC, 0): 1,
        TopicPartition(RACK_TOPIC, 1): 7,
    }


class _ScriptedConsumer:
    """Returns one record per call, forever (or nothing when `idle`)."""

    def __init__(self, idle: bool = False) -> None:
        self.calls = 0
        self.idle = idle
        self.wire = encode_reading(_reading(datetime.now(UTC).replace(microsecond=0)))

    async def getmany(
        self, timeout_ms: int = 500, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        self.calls += 1
        if self.idle:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        return {TopicPartition(RACK_TOPIC, 0): [_record(self.calls, self.wire)]}


async def test_collect_stops_at_the_size_limit() -> None:
    consumer = _ScriptedConsumer()
    batch = await collect_batch(
        consumer, BatchDecoder(PREFIX, SlotBounds()), 5, 10.0, stop=asyncio.Event()
    )
    assert batch.size == 5
    assert consumer.calls == 5


async def test_collect_stops_at_the_time_limit_and_on_stop() -> None:
    started = time.monotonic()
    batch = await collect_batch(
        _ScriptedConsumer(idle=True),
        BatchDecoder(PREFIX, SlotBounds()),
        5,
        0.3,
        stop=asyncio.Event(),
    )
    assert batch.size == 0
    assert 0.25 < time.monotonic() - started < 1.0
    stop = asyncio.Event()
    stop.set()
    consumer = _ScriptedConsumer()
    await collect_batch(consumer, BatchDecoder(PREFIX, SlotBounds()), 5, 10.0, stop=stop)
    assert consumer.calls == 0


async def test_collect_keeps_filling_past_max_wait_while_the_previous_batch_is_written() -> None:
    busy_until = time.monotonic() + 0.4
    started = time.monotonic()
    await collect_batch(
        _ScriptedConsumer(idle=True),
        BatchDecoder(PREFIX, SlotBounds()),
        5,
        0.1,
        stop=asyncio.Event(),
        writing=lambda: time.monotonic() < busy_until,
    )
    assert time.monotonic() - started >= 0.4
    consumer = _ScriptedConsumer()
    batch = await collect_batch(
        consumer,
        BatchDecoder(PREFIX, SlotBounds()),
        50,
        0.0001,
        stop=asyncio.Event(),
        writing=lambda: True,
    )
    assert batch.size == 50  # the size bound still holds
