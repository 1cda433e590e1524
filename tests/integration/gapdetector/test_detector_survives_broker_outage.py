"""The gap detector under a 2-minute broker outage (a private broker, both clusters of
the stack): it does not exit, `/healthz` says it waits for Kafka, and it evaluates
every window afterwards, without re-reading what it saved in the clusters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from ess_common.settings import CommonSettings
from ess_common.synthetic import readings
from ess_gapdetector.service import GapDetectorService
from ess_gapdetector.windows import Window
from ess_tables.schema import migrate
from helpers.common import DatabaseFactory, unique
from helpers.disposable import DisposableKafka, disposable_kafka
from helpers.gap import (
    SMALL_FLEET,
    Clusters,
    detector_settings,
    minute_ago,
    new_detector,
    produce,
    register_fleet,
)

OUTAGE_S = 120
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[tuple[DisposableKafka, str]]:
    prefix = unique("gapout").replace("_", "-")
    with disposable_kafka(tmp_path / "kafka", prefix) as kafka:
        yield kafka, prefix


async def test_a_two_minute_broker_outage_is_waited_out(
    settings: CommonSettings,
    make_database: DatabaseFactory,
    private_kafka: tuple[DisposableKafka, str],
) -> None:
    kafka, prefix = private_kafka
    dsns = {}
    for cluster in ("local", "cloud"):
        dsns[cluster] = await make_database(cluster)
        conn = await asyncpg.connect(dsns[cluster])
        try:
            await migrate(conn)
        finally:
            await conn.close()
    clusters = Clusters(dsns["local"], dsns["cloud"])
    t0 = minute_ago(5)
    await register_fleet(clusters, SMALL_FLEET, t0)
    private = settings.model_copy(update={"kafka_bootstrap": kafka.bootstrap})
    await produce(private, prefix, readings(SMALL_FLEET, t0, seconds=30))
    detector = new_detector(
        detector_settings(
            private,
            prefix,
            clusters,
            gap_tables=("rack",),
            gap_state_interval_s=5.0,
            gap_retry_max_s=10.0,
            gap_health_stale_s=600.0,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(detector.run(stop))
    try:
        first = Window(int(t0.timestamp()), "minute")
        await _until(lambda: any(r.window == first for r in detector.results), 90, task)
        await asyncio.sleep(6)  # a state save after the first window
        kafka.stop()
        outage_started = time.time()
        await _until(lambda: "kafka" in _waiting(detector), 90, task)
        assert detector.health().ok  # waiting, not dead: a restart would not help
        while time.time() - outage_started < OUTAGE_S:
            assert not task.done(), "the detector exited during the outage"
            await asyncio.sleep(2)
        kafka.start()
        back = time.time()
        # every minute window that closed during and after the outage gets evaluated
        closed = [
            Window(s, "minute")
            for s in range(int(outage_started) - int(outage_started) % 60, int(back), 60)
            if s + 60 + 1 <= back
        ]
        await _until(
            lambda: all(any(r.window == w for r in detector.results) for w in closed), 150, task
        )
        await _until(lambda: "kafka" not in _waiting(detector), 60, task)
        assert detector.health().ok
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def _waiting(detector: GapDetectorService) -> dict[str, object]:
    waiting = detector.health().detail["waiting_for"]
    assert isinstance(waiting, dict)
    return waiting


async def _until(check: Callable[[], bool], timeout_s: float, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if task.done():
            task.result()
            raise AssertionError("the detector stopped by itself")
        assert time.monotonic() < deadline, f"not within {timeout_s}s"
        await asyncio.sleep(0.5)
