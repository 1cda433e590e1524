"""The plan of `essctl offsets reset`: Kafka's `kafka-consumer-groups --reset-offsets` rules.

Pure: the caller reads each partition's bounds, the group's committed offset
and (for `--to-datetime`) the offset found for the time, and this module
decides the new offset exactly as Kafka's tool does:

- `--to-offset N` and `--shift-by N` are clamped to the partition's
  [earliest, latest] (Kafka's `checkOffsetRange`);
- `--shift-by` needs a committed offset to shift (Kafka refuses otherwise);
- `--to-datetime` takes the first offset whose timestamp is >= the time, or
  the latest offset when no record is that recent;
- `--to-earliest` / `--to-latest` take the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Strategy = Literal["to-offset", "shift-by", "to-datetime", "to-earliest", "to-latest"]
STRATEGIES: tuple[Strategy, ...] = (
    "to-offset",
    "shift-by",
    "to-datetime",
    "to-earliest",
    "to-latest",
)


class PlanError(ValueError):
    """The reset cannot be planned (the message says why, for the operator)."""


@dataclass(frozen=True)
class Target:
    strategy: Strategy
    value: int | None = None  # --to-offset / --shift-by
    at: datetime | None = None  # --to-datetime


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    earliest: int
    latest: int
    committed: int | None  # None: the group never committed on this partition
    at_time: int | None = None  # --to-datetime: first offset with timestamp >= the time


@dataclass(frozen=True)
class Reset:
    topic: str
    partition: int
    current: int | None
    new: int
    earliest: int
    latest: int
    clamped: bool  # the requested offset was outside [earliest, latest]

    def as_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "current": self.current,
            "new": self.new,
            "earliest": self.earliest,
            "latest": self.latest,
            "clamped": self.clamped,
        }


def _clamp(state: PartitionState, wanted: int) -> tuple[int, bool]:
    if wanted < state.earliest:
        return state.earliest, True
    if wanted > state.latest:
        return state.latest, True
    return wanted, False


def new_offset(state: PartitionState, target: Target) -> Reset:
    """The new offset of one partition under `target`."""
    clamped = False
    match target.strategy:
        case "to-earliest":
            new = state.earliest
        case "to-latest":
            new = state.latest
        case "to-datetime":
            new = state.latest if state.at_time is None else state.at_time
        case "to-offset":
            assert target.value is not None
            new, clamped = _clamp(state, target.value)
        case "shift-by":
            assert target.value is not None
            if state.committed is None:
                raise PlanError(
                    f"cannot shift {state.topic}:{state.partition}: the group has no committed"
                    " offset there"
                )
            new, clamped = _clamp(state, state.committed + target.value)
    return Reset(
        state.topic,
        state.partition,
        state.committed,
        new,
        state.earliest,
        state.latest,
        clamped,
    )


def plan(states: list[PartitionState], target: Target) -> list[Reset]:
    """New offsets of every partition, in (topic, partition) order."""
    ordered = sorted(states, key=lambda s: (s.topic, s.partition))
    return [new_offset(s, target) for s in ordered]
