"""Finding the rows a database refuses, so one bad row cannot block a partition forever.

A batch the database rejects as a whole is split in halves until the refused
rows stand alone; every other row is still written (each part in its own
transaction). About 2 * log2(n) extra transactions per bad row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Rejected(Generic[T]):
    index: int  # position in the batch given to `write_isolating_rejects`
    item: T
    error: BaseException


async def write_isolating_rejects(
    items: Sequence[T],
    write: Callable[[Sequence[T]], Awaitable[R]],
    is_rejection: Callable[[BaseException], bool],
) -> tuple[list[R], list[Rejected[T]]]:
    """Write `items`; on a rejection, bisect. Other errors propagate (the caller retries all)."""
    results: list[R] = []
    rejected: list[Rejected[T]] = []

    async def attempt(start: int, stop: int) -> None:
        if start >= stop:
            return
        try:
            results.append(await write(items[start:stop]))
        except Exception as exc:
            if not is_rejection(exc):
                raise
            if stop - start == 1:
                rejected.append(Rejected(start, items[start], exc))
                return
            middle = (start + stop) // 2
            await attempt(start, middle)
            await attempt(middle, stop)

    await attempt(0, len(items))
    return results, rejected
