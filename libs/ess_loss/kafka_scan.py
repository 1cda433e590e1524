"""A bounded scan of the telemetry topics for a slot range (for `essctl loss`).

Same light parse as the live detector; every partition is read from
`offsets_for_times(start)` up to its end offset at the start of the scan, or
until a slot after `end + lateness` shows up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition

from ess_common.kafka_offsets import assign_topics, kafka_covers, offset_reader, offsets_at
from ess_common.model import Table
from ess_common.topics import telemetry_topic
from ess_loss.slots import SlotTracker, record_slot


@dataclass(frozen=True)
class ScanResult:
    table: Table
    messages: int
    covered: bool  # False: Kafka no longer holds the start of the range


async def scan_slots(
    bootstrap: str,
    topic_prefix: str,
    table: Table,
    slot_range: tuple[datetime, datetime],
    tracker: SlotTracker,
    *,
    lateness_s: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> ScanResult:
    start, end = slot_range
    lo, hi = int(start.timestamp()), int(end.timestamp())
    stop_at = hi + lateness_s
    reader = offset_reader(bootstrap, client_id="essctl-scan")
    await reader.start()
    try:
        partitions = await assign_topics(reader, [telemetry_topic(table, topic_prefix)])
        covered = await kafka_covers(reader, partitions, start)
        starts = await offsets_at(reader, partitions, start)
        ends: dict[TopicPartition, int] = await reader.end_offsets(partitions)
        pending = {tp: ends[tp] for tp in partitions if starts[tp] is not None}
        pending = {tp: end_off for tp, end_off in pending.items() if end_off > (starts[tp] or 0)}
        reader.assign(list(pending))
        for tp in pending:
            reader.seek(tp, starts[tp] or 0)
        read = 0
        now = time.time()
        while pending:
            fetched: dict[TopicPartition, list[Any]] = await reader.getmany(
                *pending, timeout_ms=1000, max_records=20_000
            )
            for tp, records in fetched.items():
                done = tp in pending and _feed(
                    tracker,
                    table,
                    records,
                    end_offset=pending[tp],
                    keep=(lo, hi),
                    stop_at=stop_at,
                    now=now,
                )
                if done:
                    reader.pause(tp)
                    del pending[tp]
                read += len(records)
            for tp in list(pending):
                if await reader.position(tp) >= pending[tp]:
                    reader.pause(tp)
                    del pending[tp]
            if progress is not None:
                progress(read)
        return ScanResult(table, read, covered)
    finally:
        await reader.stop()


def _feed(
    tracker: SlotTracker,
    table: Table,
    records: list[Any],
    *,
    end_offset: int,
    keep: tuple[int, int],
    stop_at: float,
    now: float,
) -> bool:
    """Add the records' slots in `keep` = `[lo, hi)`; True when the partition is done."""
    lo, hi = keep
    for record in records:
        if record.offset >= end_offset:
            return True
        found = record_slot(tracker, table, record.key, record.value)
        if found is None:
            continue
        device, slot = found
        if slot >= stop_at:
            return True
        if lo <= slot < hi:
            tracker.add(table, device, slot, now)
    return False
