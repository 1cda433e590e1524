"""kill -9 of the archive consumer at random moments during an ingest, then a replay of a
range already archived: a reader sees every reading exactly once, nothing missing.

The archive runs as a real process (`python -m ess_archive`) with small flushes and
frequent roll-ups, so kills land in a segment write, between a segment and its manifest,
between the manifest and the offset commit, and inside roll-ups. Afterwards the manifests'
readers (`ArchiveReader`) and a Hive reader of the visible parts (pyarrow's S3 client,
after the last roll-up) both see count = distinct (device, slot) = produced.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

from ess_archive_layout.settings import ArchiveStoreSettings
from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, scaled_fleet
from helpers.archive import (
    archive_env,
    archive_settings,
    archived_keys,
    manifest_rows,
    private_prefix,
    read_table_as_analyst,
    roll_up_everything,
)
from helpers.common import unique
from helpers.sink import SinkProcess
from helpers.sinkdata import messages, produce, produce_paced, recent_slot

log = logging.getLogger(__name__)

FLEET = scaled_fleet(300)
SLOTS = 200  # ~60,000 readings
KILLS = 8
PRODUCE_OVER_S = 20.0
REPLAYED_SLOTS = 60  # re-sent after everything was archived


async def test_no_duplicates_and_nothing_missing_despite_kill_9_and_a_replay(
    settings: CommonSettings, telemetry_prefix: str, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    log.warning("kill schedule seed %d", seed)
    rng = random.Random(seed)
    start = recent_slot(3)
    batch = messages(readings(FLEET, start, SLOTS), telemetry_prefix)
    produced = len(batch)
    async with private_prefix() as store:
        config = archive_settings(
            settings,
            store,
            telemetry_prefix,
            unique("g-archive"),
            archive_flush_rows=4000,
            archive_rollup_check_s=1.0,
            archive_rollup_after_s=2.0,
            archive_part_rows=20_000,  # several parts per day, some rewritten in place
            archive_group_instance_id="archive-0",
        )
        archive = SinkProcess(
            archive_env(config, ESS_LOG_FORMAT="text"),
            tmp_path / "archive.log",
            module="ess_archive",
            name="archive",
        )
        started = time.monotonic()
        rows_at_kills: list[int] = []
        try:
            async with ReadingProducer(settings.kafka_bootstrap, telemetry_prefix) as producer:
                producing = asyncio.create_task(
                    produce_paced(producer, batch, SLOTS, PRODUCE_OVER_S)
                )
                while len(rows_at_kills) < KILLS or not producing.done():
                    await archive.start()
                    await archive.wait_started()
                    await asyncio.sleep(rng.uniform(0.3, 3.0))
                    assert archive.running, f"archive exited by itself; see {archive.log_file}"
                    await archive.kill()
                    rows_at_kills.append(await manifest_rows(store))
                assert await producing == produced
                await archive.start()
                await _until_archived(store, produced, archive)

                # a replay of a range already archived: the same readings, new offsets
                replayed = [m for m in batch if m.key][: REPLAYED_SLOTS * len(FLEET.devices())]
                await produce(producer, replayed)
                await asyncio.sleep(config.archive_flush_s * 4)
                assert await archive.terminate() == 0  # flushes and commits what it read
        finally:
            await archive.kill()
        during = [n for n in rows_at_kills if 0 < n < produced]
        assert len(set(during)) >= KILLS // 2, rows_at_kills  # the kills hit a moving ingest

        assert await archived_keys(store) == (produced, produced)
        # the last roll-up (in-process), then a Hive reader of the visible parts only
        await roll_up_everything(config)
        seen = sum(read_table_as_analyst(store, t).num_rows for t in ("bank", "rack", "pcs", "etc"))
        assert seen == produced
        rack = read_table_as_analyst(store, "rack")
        assert (
            len(set(zip(rack["device_id"].to_pylist(), rack["ts"].to_pylist(), strict=True)))
            == rack.num_rows
        )
    log.warning(
        "%d readings; archived at each kill %s; %.0fs",
        produced,
        rows_at_kills,
        time.monotonic() - started,
    )


async def _until_archived(store: ArchiveStoreSettings, produced: int, archive: SinkProcess) -> None:
    deadline = time.monotonic() + 120
    while True:
        rows, distinct = await archived_keys(store)
        assert rows == distinct, f"a reader sees {rows - distinct} duplicates"
        if rows == produced:
            return
        assert rows < produced
        assert archive.running, f"archive exited by itself; see {archive.log_file}"
        assert time.monotonic() < deadline, f"only {rows} of {produced} archived within 120 s"
        await asyncio.sleep(1.0)
