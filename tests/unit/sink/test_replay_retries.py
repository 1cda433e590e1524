"""The replay worker branches on `ReplayError.retriable`: a stalled replay is tried
again after the backoff (up to `attempts` tries), a rejected request fails at once,
and a stop during the wait is never reported as a failure (it is served again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from ess_common.backoff import Backoff
from ess_common.replay import ReplayRequest, ReplayStatus, SlotRange, decode_control
from ess_sink import replay_worker
from ess_sink.metrics import ReplayMetrics
from ess_sink.replay_worker import ReplayClients, ReplayWorker
from ess_sink.settings import ReplaySettings
from ess_tables.batch import SlotBounds
from ess_tables.replay import (
    PartitionSpan,
    ReplayCounts,
    ReplayInterruptedError,
    ReplayPlan,
    ReplayRejectedError,
    ReplayStalledError,
)

SLOT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Reader:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class _StatusProducer:
    def __init__(self) -> None:
        self.states: list[str] = []

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        status = decode_control(value)
        assert isinstance(status, ReplayStatus)
        self.states.append(status.state)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Replays:
    """Stands in for `plan_replay` / `execute_replay`: raises `outcomes` in turn, then
    completes."""

    def __init__(self, *outcomes: Exception, plan_error: Exception | None = None) -> None:
        self.outcomes = list(outcomes)
        self.plan_error = plan_error
        self.plans = 0

    async def plan(self, _reader: Any, request: ReplayRequest, _prefix: str) -> ReplayPlan:
        self.plans += 1
        if self.plan_error is not None:
            raise self.plan_error
        return ReplayPlan(request, "unit.telemetry.rack", (PartitionSpan(0, 0, 10),))

    async def execute(self, _reader: Any, _conn: Any, plan: ReplayPlan, **_: Any) -> ReplayCounts:
        if self.outcomes:
            raise self.outcomes.pop(0)
        return ReplayCounts(messages_planned=plan.messages, messages_read=10, rows_inserted=3)


def _worker(registry: CollectorRegistry, attempts: int = 3) -> ReplayWorker:
    async def no_database() -> asyncpg.Connection:
        raise AssertionError("not used by `serve`")

    return ReplayWorker(
        cluster="local",
        topic_prefix="unit",
        group_id="unit-replay",
        settings=ReplaySettings(retry_initial_s=0.01, retry_max_s=0.02, attempts=attempts),
        clients=ReplayClients(
            control=lambda: pytest.fail("not used by `serve`"),
            status=lambda: pytest.fail("not used by `serve`"),
            reader=lambda: cast(Any, _Reader()),
            database=no_database,
            dead_letters=lambda _producer: cast(Any, None),  # the fake execute sends none
        ),
        metrics=ReplayMetrics(registry),
        backoff=Backoff(0.01, 0.02),
        bounds=SlotBounds(),
    )


async def _serve(
    replays: _Replays,
    monkeypatch: pytest.MonkeyPatch,
    *,
    attempts: int = 3,
    stop: asyncio.Event | None = None,
) -> tuple[ReplayCounts | None, list[str], CollectorRegistry]:
    monkeypatch.setattr(replay_worker, "plan_replay", replays.plan)
    monkeypatch.setattr(replay_worker, "execute_replay", replays.execute)
    registry = CollectorRegistry()
    status = _StatusProducer()
    request = ReplayRequest(
        cluster="local",
        table="rack",
        slots=SlotRange(start=SLOT, end=SLOT + timedelta(minutes=5)),
        reason="operator",
        requested_by="unit",
    )
    counts = await _worker(registry, attempts).serve(
        request, cast(Any, object()), cast(Any, status), stop or asyncio.Event()
    )
    return counts, status.states, registry


def _requests(registry: CollectorRegistry, outcome: str) -> float:
    labels = {"cluster": "local", "outcome": outcome}
    return registry.get_sample_value("ess_sink_replay_requests_total", labels) or 0.0


async def test_a_stalled_replay_is_tried_again_and_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replays = _Replays(ReplayStalledError("no records for 30s"))
    counts, states, registry = await _serve(replays, monkeypatch)
    assert counts is not None
    assert counts.rows_inserted == 3
    assert replays.plans == 2  # planned afresh for the second try
    assert states == ["started", "completed"]  # one start, no failure in between
    assert (_requests(registry, "completed"), _requests(registry, "failed")) == (1, 0)


async def test_a_replay_that_keeps_stalling_fails_after_the_last_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replays = _Replays(*(ReplayStalledError("no records for 30s") for _ in range(5)))
    counts, states, registry = await _serve(replays, monkeypatch, attempts=2)
    assert counts is None
    assert replays.plans == 2
    assert states == ["started", "failed"]
    assert _requests(registry, "failed") == 1


async def test_a_rejected_request_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    replays = _Replays(plan_error=ReplayRejectedError("unit.telemetry.rack has no partition 9"))
    counts, states, registry = await _serve(replays, monkeypatch)
    assert counts is None
    assert replays.plans == 1
    assert states == ["failed"]
    assert _requests(registry, "failed") == 1


async def test_a_stop_while_waiting_to_retry_is_an_interruption_not_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = asyncio.Event()
    stop.set()
    replays = _Replays(ReplayStalledError("no records for 30s"))
    with pytest.raises(ReplayInterruptedError):
        await _serve(replays, monkeypatch, stop=stop)
    assert replays.plans == 1
