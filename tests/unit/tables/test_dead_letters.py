"""A dead-letter produce that fails is retried in-process with the shared backoff
(the sink used to exit 1); a stop while the DLQ is unreachable gives up without
counting anything as sent, so the caller commits nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaTimeoutError

from ess_common.backoff import Backoff
from ess_tables.batch import Poison
from ess_tables.dead_letters import DeadLetters, DeadLettersNotSentError


class _FlakyProducer:
    """Fails the acks of the first `failures` messages, then acknowledges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes, dict[str, bytes]]] = []

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            ack.set_exception(KafkaTimeoutError())
        else:
            self.sent.append((topic, value, dict(headers or ())))
            ack.set_result(None)
        return ack


def _poison(offset: int) -> Poison:
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "unit.telemetry.rack", 2, offset, 0, 0, b"k", b"{bad", None, 1, 4, []
    )
    return Poison(record, "not_json", "unexpected end")


class _Counts:
    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.retries = 0

    def count(self, reason: str, n: int) -> None:
        self.sent[reason] = self.sent.get(reason, 0) + n

    def retry(self) -> None:
        self.retries += 1


def _dead_letters(producer: _FlakyProducer, counts: _Counts) -> DeadLetters:
    return DeadLetters(
        producer,
        "unit",
        "cloud",
        backoff=Backoff(0.001, 0.002),
        count=counts.count,
        count_retry=counts.retry,
    )


async def test_a_failed_produce_is_retried_until_acknowledged() -> None:
    producer, counts = _FlakyProducer(failures=3), _Counts()
    await _dead_letters(producer, counts).send([_poison(7), _poison(8)], asyncio.Event())
    assert counts.retries == 2  # two attempts of two messages each lost 3 acks in total
    assert counts.sent == {"not_json": 2}
    topic, value, headers = producer.sent[-1]
    assert (topic, value) == ("unit.telemetry.dlq", b"{bad")
    assert headers["reason"] == b"not_json"
    assert (headers["topic"], headers["partition"], headers["offset"]) == (
        b"unit.telemetry.rack",
        b"2",
        b"8",
    )
    assert (headers["sink"], headers["via"]) == (b"cloud", b"sink")


async def test_a_stop_while_the_dlq_is_unreachable_sends_and_counts_nothing() -> None:
    producer, counts = _FlakyProducer(failures=10**6), _Counts()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    with pytest.raises(DeadLettersNotSentError):
        await _dead_letters(producer, counts).send([_poison(7)], stop)
    assert counts.sent == {}
    assert counts.retries > 1
