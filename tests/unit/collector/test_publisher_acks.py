"""The publisher's bookkeeping against a fake producer: no position past a record in flight.

`send_raw` of aiokafka can wait (its buffer is full, metadata is missing)
before it returns the ack future; while it waits, the cursor must not move
past that record. A failed acknowledgement is resent after the shared backoff.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from ess_collector.metrics import CollectorMetrics
from ess_collector.publisher import SpoolingPublisher
from ess_collector.spool import Spool
from ess_common.backoff import Backoff

TOPIC = "unit.telemetry.rack"


class FakeKafka:
    """`stall_after`: the sends after that many wait inside `send_raw` (buffer full)
    until `release`; `refuse`: every acknowledgement fails (batch timed out)."""

    def __init__(self, *, stall_after: int | None = None, refuse: bool = False) -> None:
        self.sent = 0
        self.release = asyncio.Event()
        self._stall_after = stall_after
        self._refuse = refuse

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        self.sent += 1
        if self._stall_after is not None and self.sent > self._stall_after:
            await self.release.wait()
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._refuse:
            ack.set_exception(KafkaTimeoutError())
        else:
            ack.set_result(None)
        return ack


def _publisher(tmp_path: Path, producer: Any, backoff: Backoff) -> SpoolingPublisher:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    for n in range(5):
        spool.append(TOPIC, b"site1/bank1/rack1", f"{n}".encode())
    spool.flush()
    return SpoolingPublisher(
        spool,
        producer=producer,
        metrics=CollectorMetrics(CollectorRegistry()),
        topic_prefix="unit",
        max_in_flight=100,
        retry=backoff,
    )


async def test_the_cursor_never_passes_a_record_still_inside_send_raw(tmp_path: Path) -> None:
    kafka = FakeKafka(stall_after=1)
    publisher = _publisher(tmp_path, kafka, Backoff(0.1, 1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop, drain_timeout_s=2))
    await asyncio.sleep(1.2)  # two housekeeping rounds commit and save the cursor
    assert kafka.sent == 2  # record 0 acknowledged, record 1 waits inside send_raw
    assert publisher.spool.cursor <= 1
    assert (tmp_path / "cursor").read_text().strip() in {"0", "1"}
    kafka.release.set()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert publisher.spool.depth == 0


async def test_resends_after_failed_acks_wait_for_the_shared_backoff(tmp_path: Path) -> None:
    kafka = FakeKafka(refuse=True)
    backoff = Backoff(0.2, 0.4, random.Random(1))
    publisher = _publisher(tmp_path, kafka, backoff)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop, drain_timeout_s=0))
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(task, 5)
    # 5 first sends, then one resend of the 5 per backoff step (0.1-0.4 s): a handful
    assert 5 < kafka.sent <= 5 * 8, kafka.sent
    assert backoff.failures >= 2
    assert publisher.spool.depth == 5  # nothing acknowledged, nothing lost
