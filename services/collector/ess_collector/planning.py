"""Request planning: which reads fetch a device's points, as few as possible.

Points are spans of addresses in one of the four Modbus spaces. Spans of a
space are sorted and merged while the hole between them is at most
`gap_fill` addresses and the merged read stays within the per-read limit
(125 registers, 2000 bits). Pure functions; no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ess_collector.modbus_frames import MAX_BITS_PER_READ, ReadFunction


class Space(enum.StrEnum):
    """The four Modbus data spaces, each read by one function code."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def function(self) -> ReadFunction:
        return _FUNCTIONS[self]

    @property
    def holds_bits(self) -> bool:
        return self in (Space.COIL, Space.DISCRETE)


_FUNCTIONS = {
    Space.COIL: ReadFunction.READ_COILS,
    Space.DISCRETE: ReadFunction.READ_DISCRETE_INPUTS,
    Space.HOLDING: ReadFunction.READ_HOLDING_REGISTERS,
    Space.INPUT: ReadFunction.READ_INPUT_REGISTERS,
}


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """`count` consecutive addresses from `address` in one space."""

    space: Space
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True, order=True)
class ReadRequest:
    """One Modbus read: the function is the space's."""

    space: Space
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def covers(self, span: Span) -> bool:
        return span.space is self.space and self.address <= span.address and span.end <= self.end


class PlanError(ValueError):
    """A span that no single read can fetch."""


def plan_reads(
    spans: Iterable[Span], *, max_registers: int = 125, gap_fill: int = 0
) -> list[ReadRequest]:
    """The fewest reads (in address order per space) that cover every span."""
    requests: list[ReadRequest] = []
    for space in Space:
        limit = MAX_BITS_PER_READ if space.holds_bits else max_registers
        ordered = sorted(s for s in spans if s.space is space)
        start = end = -1
        for span in ordered:
            if span.count > limit:
                raise PlanError(f"{span.count} {space} addresses at {span.address} exceed {limit}")
            merged_end = max(end, span.end)
            if start >= 0 and span.address - end <= gap_fill and merged_end - start <= limit:
                end = merged_end
                continue
            if start >= 0:
                requests.append(ReadRequest(space, start, end - start))
            start, end = span.address, span.end
        if start >= 0:
            requests.append(ReadRequest(space, start, end - start))
    return requests


class RegisterImage:
    """What one poll read: the values of each successful request."""

    def __init__(self) -> None:
        self._reads: list[tuple[ReadRequest, Sequence[int] | Sequence[bool]]] = []

    def add(self, request: ReadRequest, values: Sequence[int] | Sequence[bool]) -> None:
        self._reads.append((request, values))

    def __len__(self) -> int:
        return len(self._reads)

    def get(self, span: Span) -> Sequence[int] | Sequence[bool] | None:
        """The values of a span (it may run over several reads), or None if any failed."""
        space, address, count = span.space, span.address, span.count
        for request, values in self._reads:  # the usual case: one read holds the whole span
            first = address - request.address
            if request.space is space and first >= 0 and first + count <= request.count:
                return values[first : first + count]
        collected: list[int] | list[bool] = []
        address = span.address
        while address < span.end:
            part = self._read_containing(span.space, address)
            if part is None:
                return None
            request, values = part
            last = min(request.end, span.end)
            collected.extend(values[address - request.address : last - request.address])  # type: ignore[arg-type]
            address = last
        return collected

    def _read_containing(
        self, space: Space, address: int
    ) -> tuple[ReadRequest, Sequence[int] | Sequence[bool]] | None:
        for request, values in self._reads:
            if request.space is space and request.address <= address < request.end:
                return request, values
        return None
