"""kill -9 of both sinks at random moments during an ingest of 100,000 readings:
afterwards every produced reading is in both clusters exactly once.

Each sink runs as a real process (`python -m ess_sink`) and is SIGKILLed at
least ten times while readings keep arriving, then restarted. A kill can land
anywhere: in a COPY, between the database commit and the offset commit, in a
rebalance. What was written but not committed is read again and absorbed by
the upsert, so: count(*) = count(distinct (device_id, ts)) = produced.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

from ess_common.clusters import Cluster
from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, scaled_fleet
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import SinkProcess, sink_env
from helpers.sinkdata import (
    assert_both_hold_each_reading_once,
    messages,
    produce_paced,
    recent_slot,
    row_count,
)

log = logging.getLogger(__name__)

READINGS = 100_000
FLEET = scaled_fleet(500)  # ~500 devices: ~500 readings per one-second slot
SLOTS = -(-READINGS // len(FLEET.devices()))
KILLS = 10
PRODUCE_OVER_S = 30.0  # readings keep arriving while the sinks are being killed


async def _kill_repeatedly(
    sink: SinkProcess, dsn: str, rng: random.Random, kills: int, producing: asyncio.Task[int]
) -> list[int]:
    """Start, let it run a random while, SIGKILL; until `kills` are done and production is.

    Returns the cluster's row count at each kill (to show the kills hit a running ingest).
    """
    rows_at_kill: list[int] = []
    while len(rows_at_kill) < kills or not producing.done():
        await sink.start()
        await sink.wait_started()
        await asyncio.sleep(rng.uniform(0.1, 2.5))
        assert sink.running, f"sink exited by itself; see {sink.log_file}"
        await sink.kill()
        rows_at_kill.append(await row_count(dsn))
    await sink.start()  # the survivor: runs until everything is in
    return rows_at_kill


async def test_every_reading_lands_exactly_once_despite_repeated_kill_9(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    log.warning("kill schedule seed %d", seed)
    rng = random.Random(seed)
    batch = messages(readings(FLEET, recent_slot(2), SLOTS), topic_prefix)
    produced = len(batch)
    assert produced >= READINGS
    clusters: tuple[Cluster, ...] = ("local", "cloud")
    dsns = {c: await make_database(c) for c in clusters}
    sinks = {
        c: SinkProcess(
            sink_env(
                settings,
                c,
                dsns[c],
                topic_prefix,
                unique(f"g-{c}"),
                # Static membership: a restarted sink takes its partitions back at once
                # instead of waiting for the killed member's session to expire.
                ESS_SINK_GROUP_INSTANCE_ID=f"sink-{c}-0",
                ESS_LOG_FORMAT="text",
            ),
            tmp_path / f"sink-{c}.log",
        )
        for c in clusters
    }
    started = time.monotonic()
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        try:
            async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
                producing = asyncio.create_task(
                    produce_paced(producer, batch, SLOTS, PRODUCE_OVER_S)
                )
                rows_at_kills = await asyncio.gather(
                    *(_kill_repeatedly(sinks[c], dsns[c], rng, KILLS, producing) for c in clusters)
                )
                assert await producing == produced
            for at_kills in rows_at_kills:
                assert len(at_kills) >= KILLS
                during_ingest = [n for n in at_kills if 0 < n < produced]
                assert len(set(during_ingest)) >= KILLS // 2, at_kills  # kills hit a moving ingest

            deadline = time.monotonic() + 90
            while [await row_count(dsns[c]) for c in clusters] != [produced, produced]:
                assert time.monotonic() < deadline, "the sinks did not catch up within 90 s"
                assert all(s.running for s in sinks.values()), "a sink exited by itself"
                await asyncio.sleep(0.5)
            for c in clusters:
                await sinks[c].wait_started()
                assert await sinks[c].terminate() == 0
        finally:
            for sink in sinks.values():
                await sink.kill()

    await assert_both_hold_each_reading_once(dsns, produced)
    log.warning(
        "%d readings; rows at each kill %s; %.0fs",
        produced,
        dict(zip(clusters, rows_at_kills, strict=True)),
        time.monotonic() - started,
    )
