"""The loss of one window of one table: who is expected, what reached Kafka, what
each cluster holds. One implementation for the gap detector (a window at a time,
live) and `essctl loss` (a range, slice by slice).

The caller says which devices it expects (the detector: heard from recently;
`essctl`: seen in the range) and passes in how to ask a cluster for its
presence bits, so the I/O stays with it; a device a cluster holds is expected
too, because holding it proves it reached Kafka. The rest is pure: the Kafka
bits come from the `SlotTracker`, the arithmetic from `lossmath`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from ess_common.model import Table
from ess_loss.lossmath import TableWindowLoss, table_window_loss
from ess_loss.slots import SlotTracker

C = TypeVar("C", bound=str)

# cluster -> device -> bits of the window it holds; None: the cluster could not be asked
PresenceOf = Callable[[C], Awaitable[Mapping[str, int] | None]]


def site_of_device(device: str) -> str:
    """`site1/bank1/rack2` -> `site1`."""
    return device.split("/", 1)[0]


@dataclass(frozen=True)
class AnsweredLoss(Generic[C]):
    loss: TableWindowLoss
    clusters: tuple[C, ...]  # the clusters that answered, in the order asked


def loss_of_window(
    tracker: SlotTracker,
    table: Table,
    start_s: int,
    end_s: int,
    *,
    expected: Iterable[str],
    present: Mapping[str, Mapping[str, int]],
) -> TableWindowLoss:
    """Loss of `[start_s, end_s)` for `expected` devices and every device a cluster holds."""
    devices = set(expected)
    for bits in present.values():
        devices.update(bits)
    kafka = {d: tracker.bits(table, d, start_s, end_s) for d in devices}
    sites = {d: site_of_device(d) for d in devices}
    return table_window_loss(end_s - start_s, devices, sites, kafka, present)


async def window_loss(
    tracker: SlotTracker,
    table: Table,
    start_s: int,
    end_s: int,
    *,
    expected: Iterable[str],
    clusters: Iterable[C],
    presence_of: PresenceOf[C],
) -> AnsweredLoss[C] | None:
    """Ask every cluster, then `loss_of_window`; None when no cluster answered."""
    answered: list[C] = []
    present: dict[str, Mapping[str, int]] = {}
    for cluster in clusters:
        bits = await presence_of(cluster)
        if bits is not None:
            answered.append(cluster)
            present[cluster] = bits
    if not present:
        return None
    loss = loss_of_window(tracker, table, start_s, end_s, expected=expected, present=present)
    return AnsweredLoss(loss, tuple(answered))
