"""The archive's loop against an in-memory bucket and consumer: offsets only after the
manifest, holding while the store is away, crashes between steps leave each reading once."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from ess_archive.metrics import ArchiveMetrics
from ess_archive.service import ArchiveService
from ess_archive.settings import ArchiveSettings
from ess_archive.writer import ArchiveWriter, RollupPolicy
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.store import ArchiveUnavailable
from ess_common.backoff import Backoff
from ess_common.codec import encode_reading
from ess_common.synthetic import readings, seed_fleet
from ess_common.topics import telemetry_topic
from ess_tables.batch import BatchDecoder, SlotBounds
from helpers.archive_fakes import FakeMember, MemoryStore, Record

START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
SETTINGS = ArchiveSettings.model_validate(
    {
        "archive_s3_bucket": "fake",
        "topic_prefix": "t",
        "archive_flush_s": 0.01,
        "archive_part_rows": 1000,
    }
)


def fetch(seconds: int = 3, first_offset: int = 0) -> dict[TopicPartition, list[Record]]:
    out: dict[TopicPartition, list[Record]] = {}
    for r in readings(seed_fleet(), START, seconds):
        tp = TopicPartition(telemetry_topic(r.table, "t"), 0)
        records = out.setdefault(tp, [])
        records.append(
            Record(
                tp.topic, 0, first_offset + len(records), r.device.key.encode(), encode_reading(r)
            )
        )
    return out


def service(store: MemoryStore, member: FakeMember) -> ArchiveService:
    reader = ArchiveReader(store)
    metrics = ArchiveMetrics(CollectorRegistry())
    writer = ArchiveWriter(store, reader, metrics, RollupPolicy(1000, 3600.0, 1024, 3600.0))
    return ArchiveService(
        SETTINGS,
        consumer=member,
        decoder=BatchDecoder("t", SlotBounds()),
        writer=writer,
        reader=reader,
        metrics=metrics,
        backoff=Backoff(0.01, 0.02),
    )


async def run_until(svc: ArchiveService, done: Any, timeout_s: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def drained(member: FakeMember, svc: ArchiveService) -> bool:
    """Every fetch handed out, staged and committed."""
    return (
        not member.fetches
        and not svc.offsets
        and svc.stager.count == 0
        and any(e[0] == "commit" for e in member.events)
    )


async def archived(store: MemoryStore) -> list[tuple[str, datetime]]:
    reader = ArchiveReader(store)
    keys: list[tuple[str, datetime]] = []
    for pd in await reader.partition_days():
        data = (await reader.read_day(pd, ("device_id", "ts"))).data
        keys += list(zip(data["device_id"].to_pylist(), data["ts"].to_pylist(), strict=True))
    return keys


def produced(seconds: int = 3) -> int:
    return sum(len(r) for r in fetch(seconds).values())


async def test_offsets_are_committed_after_the_manifests_that_list_the_readings() -> None:
    store = MemoryStore()
    member = FakeMember(store.events, [fetch()])
    await run_until(service(store, member), lambda: any(e[0] == "commit" for e in store.events))
    first_commit = next(i for i, e in enumerate(store.events) if e[0] == "commit")
    puts = [p for kind, p in store.events[:first_commit] if kind == "put"]
    segments = [p for p in puts if "/seg-" in p]
    manifests = [p for p in puts if p.endswith("_manifest.json")]
    assert len(manifests) == len(segments) == 16  # 4 tables x 4 sites, one day
    assert not [p for kind, p in store.events[first_commit:] if kind == "put" and "/seg-" in p]
    keys = await archived(store)
    assert len(keys) == len(set(keys)) == produced()


async def test_the_store_away_holds_the_readings_and_commits_nothing_until_back() -> None:
    store = MemoryStore(down=True)
    member = FakeMember(store.events, [fetch()])
    svc = service(store, member)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        async with asyncio.timeout(5):
            while member.holds < 5:  # noqa: ASYNC110 - polling the service's own state
                await asyncio.sleep(0.01)
        assert svc.holding_since is not None
        assert svc.health().detail["object_store"] == "down"
        assert not [e for e in store.events if e[0] == "commit"]
        store.down = False
        async with asyncio.timeout(5):
            while not any(e[0] == "commit" for e in store.events):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert ("resume", None) in store.events
        assert svc.health().detail["object_store"] == "up"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert len(await archived(store)) == produced()


async def test_a_crash_before_the_manifest_leaves_nothing_and_the_rerun_archives_once() -> None:
    store = MemoryStore(fail_puts_matching="_manifest.json")
    crashed = service(store, FakeMember(store.events, [fetch()]))
    stop = asyncio.Event()
    task = asyncio.create_task(crashed.run(stop))
    async with asyncio.timeout(5):
        while not any("/seg-" in str(e[1]) for e in store.events):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    task.cancel()  # kill -9: no drain, nothing committed
    await asyncio.wait({task})
    assert not [e for e in store.events if e[0] == "commit"]
    assert await archived(store) == []  # the segment is written but not listed: not archived
    store.fail_puts_matching = None
    # the next run reads the same records again (nothing was committed), plus a replay
    rerun_member = FakeMember(store.events, [fetch(), fetch(3, first_offset=1000)])
    rerun = service(store, rerun_member)
    await run_until(
        rerun, lambda: sum(e[0] == "commit" for e in store.events) >= 1 and not rerun.offsets
    )
    await asyncio.sleep(0.05)
    keys = await archived(store)
    assert len(keys) == len(set(keys)) == produced()


async def test_a_rollup_interrupted_after_its_parts_shows_each_reading_once() -> None:
    store = MemoryStore()
    for batch in (fetch(2), fetch(3, first_offset=500)):  # two runs: two segments per day
        member = FakeMember(store.events, [batch])
        svc = service(store, member)
        await run_until(svc, lambda m=member, s=svc: drained(m, s))
    writer, reader = svc.writer, svc.reader
    days = await reader.partition_days()
    store.fail_puts_matching = "_manifest.json"  # the part is written, the manifest is not
    for pd in days:
        with contextlib.suppress(ArchiveUnavailable):
            await writer.rollup(pd, force=True)
    assert any("/part-" in p for p in store.objects)
    keys = await archived(store)
    assert len(keys) == len(set(keys)) == produced(3)
    store.fail_puts_matching = None
    for pd in days:
        assert await writer.rollup(pd, force=True)
        m = (await reader.manifest(pd)).manifest
        assert m.segments == ()
        assert len(m.parts) == 1
    assert not [p for p in store.objects if "/seg-" in p]  # folded segments deleted
    keys = await archived(store)
    assert len(keys) == len(set(keys)) == produced(3)


async def test_a_revocation_flushes_and_commits_what_is_staged_first() -> None:
    store = MemoryStore()
    svc = service(store, FakeMember(store.events, []))
    await svc._stage(fetch())  # staged, not flushed yet
    assert svc.stager.count == produced()
    await svc.partitions_revoked(frozenset(fetch()))
    assert [e for e in store.events if e[0] == "commit"]
    assert svc.stager.count == 0
    assert len(await archived(store)) == produced()


async def test_a_revocation_while_the_store_is_away_forgets_what_is_staged() -> None:
    store = MemoryStore()
    member = FakeMember(store.events, [])
    svc = service(store, member)
    await svc._stage(fetch())
    store.down = True
    flushing = asyncio.create_task(svc.flush_and_commit())  # holds: the store is away
    async with asyncio.timeout(5):
        while member.holds < 2:  # noqa: ASYNC110 - polling the service's own state
            await asyncio.sleep(0.01)
    slow = svc.settings.model_copy(update={"archive_revoke_wait_s": 0.1})
    svc.settings = slow
    await svc.partitions_revoked(frozenset(fetch()))  # gives up waiting for the flush
    assert not [e for e in store.events if e[0] == "commit"]
    store.down = False
    await asyncio.wait_for(flushing, 5)
    # what was being written is durable; nothing staged is kept for the next owner
    assert svc.stager.count == 0
    assert not svc.offsets
    assert svc.stager.keys == {}
