"""A replay worker never dies silently: a request for a topic that does not exist
fails (and the next request is served), and anything unexpected restarts the worker
with the shared backoff, counted in metrics; failing in a row makes `/healthz` fail."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from ess_common.backoff import Backoff
from ess_common.kafka_offsets import UnknownTopicError
from ess_common.model import Table
from ess_common.replay import (
    ReplayRequest,
    ReplayStatus,
    SlotRange,
    decode_control,
    encode_control,
    utc_now,
)
from ess_sink import replay_worker
from ess_sink.bootstrap import bootstrap
from ess_sink.metrics import ReplayMetrics
from ess_sink.replay_worker import ReplayClients, ReplayWorker
from ess_sink.settings import ReplaySettings, SinkSettings
from ess_tables.batch import SlotBounds
from ess_tables.replay import ReplayCounts, ReplayPlan

CONTROL = TopicPartition("unit.control.replay", 0)


def _request(table: Table) -> bytes:
    start = utc_now().replace(microsecond=0) - timedelta(hours=1)
    return encode_control(
        ReplayRequest(
            cluster="local",
            table=table,
            slots=SlotRange(start=start, end=start + timedelta(minutes=5)),
            reason="operator",
            requested_by="unit",
        )
    )


class _Control:
    """The control topic: hands out `payloads` one by one, then `fail_with` (if any)."""

    def __init__(self, payloads: list[bytes], fail_with: list[Exception]) -> None:
        self.payloads = payloads
        self.fail_with = fail_with
        self.committed: list[int] = []
        self.offset = 0

    async def __aenter__(self) -> _Control:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[Any]]:
        if self.fail_with:
            raise self.fail_with.pop(0)
        await asyncio.sleep(0.001)
        if not self.payloads:
            return {}
        value = self.payloads.pop(0)
        self.offset += 1
        record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
            CONTROL.topic, 0, self.offset, 0, 0, None, value, None, 0, len(value), []
        )
        return {CONTROL: [record]}

    async def commit_processed(self, last: Mapping[TopicPartition, int]) -> bool:
        self.committed.append(last[CONTROL])
        return True


class _Status:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    async def __aenter__(self) -> _Status:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        status = decode_control(value)
        assert isinstance(status, ReplayStatus)
        self.states.append((status.table, status.state))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Conn:
    async def close(self) -> None:
        pass


class _Reader:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def _worker(control: _Control, status: _Status, registry: CollectorRegistry) -> ReplayWorker:
    async def database() -> asyncpg.Connection:
        return cast(asyncpg.Connection, _Conn())

    return ReplayWorker(
        cluster="local",
        topic_prefix="unit",
        group_id="unit-replay",
        settings=ReplaySettings(unhealthy_after=2),
        clients=ReplayClients(
            control=lambda: cast(Any, control),
            status=lambda: cast(Any, status),
            reader=lambda: cast(Any, _Reader()),
            database=database,
            dead_letters=lambda _producer: cast(Any, None),
        ),
        metrics=ReplayMetrics(registry),
        backoff=Backoff(0.001, 0.002),
        bounds=SlotBounds(),
    )


async def _plan(_reader: Any, request: ReplayRequest, prefix: str) -> ReplayPlan:
    if request.table == "bank":  # as `partitions_of` does for a topic that is not there
        raise UnknownTopicError(f"topic '{prefix}.telemetry.bank' does not exist")
    return ReplayPlan(request, f"{prefix}.telemetry.{request.table}", ())


async def _execute(_reader: Any, _conn: Any, plan: ReplayPlan, **_: Any) -> ReplayCounts:
    return ReplayCounts()


async def _run_until(worker: ReplayWorker, done: Any, timeout_s: float = 5.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                assert not task.done(), f"the worker died: {task.exception()!r}"
                await asyncio.sleep(0.005)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"cluster": "local", **labels}) or 0.0


async def test_a_request_for_a_missing_topic_fails_and_the_next_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay_worker, "plan_replay", _plan)
    monkeypatch.setattr(replay_worker, "execute_replay", _execute)
    control, status, registry = (
        _Control([_request("bank"), _request("rack")], []),
        _Status(),
        CollectorRegistry(),
    )
    worker = _worker(control, status, registry)
    await _run_until(worker, lambda: len(control.committed) == 2)
    assert status.states == [("bank", "failed"), ("rack", "started"), ("rack", "completed")]
    assert _sample(registry, "ess_sink_replay_requests_total", outcome="failed") == 1
    assert worker.health().ok


async def test_an_unexpected_error_restarts_the_worker_counted_and_unhealthy_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay_worker, "plan_replay", _plan)
    monkeypatch.setattr(replay_worker, "execute_replay", _execute)
    control = _Control([_request("rack")], [RuntimeError("a bug"), RuntimeError("a bug")])
    status, registry = _Status(), CollectorRegistry()
    worker = _worker(control, status, registry)
    seen_unhealthy: list[bool] = []

    def done() -> bool:
        seen_unhealthy.append(not worker.health().ok)
        return control.committed == [1]

    await _run_until(worker, done)
    assert any(seen_unhealthy)  # two failures in a row: /healthz failed meanwhile
    assert worker.health().ok  # and recovered once the worker reached Kafka again
    assert _sample(registry, "ess_sink_replay_worker_failures_total", kind="unexpected") == 2
    assert status.states == [("rack", "started"), ("rack", "completed")]


async def test_the_sinks_healthz_includes_the_replay_worker() -> None:
    service = bootstrap(SinkSettings(sink_cluster="local"), CollectorRegistry())
    assert service.health().ok
    service.replays.failures = service.replays.settings.unhealthy_after
    service.replays.last_error = "UnknownTopicError: topic 'ess.control.replay' does not exist"
    health = service.health()
    assert not health.ok
    assert health.detail["replay_worker_error"] == service.replays.last_error
    service.replays.failures = 0
    service.replays.ended = True  # the task returned without a stop
    assert not service.health().ok
