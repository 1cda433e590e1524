"""The loss of one window of one table: who is expected, what reached Kafka, what
each cluster holds, what each cluster's sink group has not consumed yet. One
implementation for the gap detector (a window at a time, live), `essctl loss`
(a range, slice by slice) and the daily `loss_report`.

Who is expected comes from the fleet registry (`service_time`): slots in
service, outside maintenance. A device a cluster holds or Kafka brought that
the registry does not know is listed as unregistered, not counted. The caller
passes in how to ask a cluster for its presence bits and how far each cluster's
sink group has committed, so the I/O stays with it; the Kafka bits and offsets
come from the `SlotTracker`, the arithmetic from `lossmath`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from ess_common.model import Table
from ess_loss.lossmath import TableWindowLoss, table_window_loss
from ess_loss.service_time import FleetRegistry
from ess_loss.slots import SlotTracker

C = TypeVar("C", bound=str)

# cluster -> device -> bits of the window it holds; None: the cluster could not be asked
PresenceOf = Callable[[C], Awaitable[Mapping[str, int] | None]]
# cluster -> partition -> the sink group's committed offset (None: unknown, all pending)
Committed = Mapping[str, Mapping[int, int] | None]


def site_of_device(device: str) -> str:
    """`site1/bank1/rack2` -> `site1`."""
    return device.split("/", 1)[0]


def lagging_clusters(
    tracker: SlotTracker,
    table: Table,
    start_s: int,
    end_s: int,
    *,
    devices: Iterable[str],
    committed: Committed,
) -> dict[str, set[str]]:
    """device -> clusters whose sink group has not committed past the last offset that
    carried a slot of this device's partition in the window (its missing slots are
    pending there, not lost). A device never seen in Kafka has nothing pending."""
    out: dict[str, set[str]] = {}
    ends: dict[int, int | None] = {}
    for device in devices:
        partition = tracker.partition_of.get((table, device))
        if partition is None:
            continue
        if partition not in ends:
            span = tracker.offset_span(table, partition, start_s, end_s)
            ends[partition] = None if span is None else span[1]
        end = ends[partition]
        if end is None:
            continue
        for cluster, offsets in committed.items():
            if offsets is None or offsets.get(partition, 0) < end:
                out.setdefault(device, set()).add(cluster)
    return out


def window_lag(
    tracker: SlotTracker, table: Table, start_s: int, end_s: int, committed: Mapping[int, int]
) -> int:
    """Messages a sink group still has to consume to pass the window (0: it has)."""
    partitions = {p for (t, _), p in tracker.partition_of.items() if t == table}
    lag = 0
    for partition in partitions:
        span = tracker.offset_span(table, partition, start_s, end_s)
        if span is not None:
            lag += max(0, span[1] - committed.get(partition, 0))
    return lag


def loss_of_window(
    tracker: SlotTracker,
    table: Table,
    start_s: int,
    end_s: int,
    *,
    registry: FleetRegistry,
    present: Mapping[str, Mapping[str, int]],
    committed: Committed | None = None,
    sites: Iterable[str] | None = None,
) -> TableWindowLoss:
    """Loss of `[start_s, end_s)` for the registry's devices of `table` (of `sites`)."""
    wanted = registry.expected_in(table, start_s, end_s, sites)
    seen = set(tracker.devices(table, start_s, end_s))
    for bits in present.values():
        seen.update(bits)
    site_filter = None if sites is None else set(sites)
    unregistered = {
        d
        for d in seen - set(registry.devices)
        if site_filter is None or site_of_device(d) in site_filter
    }
    kafka = {d: tracker.bits(table, d, start_s, end_s) for d in wanted}
    site_map = {d: registry.devices[d].site for d in wanted}
    pending = lagging_clusters(
        tracker, table, start_s, end_s, devices=wanted, committed=committed or {}
    )
    return table_window_loss(
        end_s - start_s,
        wanted,
        site_map,
        kafka,
        present,
        expected={d: (e.expected, e.maintenance) for d, e in wanted.items()},
        pending_in=pending,
        unregistered=unregistered,
    )


@dataclass(frozen=True)
class AnsweredLoss(Generic[C]):
    loss: TableWindowLoss
    clusters: tuple[C, ...]  # the clusters that answered, in the order asked


async def window_loss(
    tracker: SlotTracker,
    table: Table,
    start_s: int,
    end_s: int,
    *,
    registry: FleetRegistry,
    clusters: Iterable[C],
    presence_of: PresenceOf[C],
    committed: Committed | None = None,
    sites: Iterable[str] | None = None,
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
    loss = loss_of_window(
        tracker,
        table,
        start_s,
        end_s,
        registry=registry,
        present=present,
        committed={c: v for c, v in (committed or {}).items() if c in present},
        sites=sites,
    )
    return AnsweredLoss(loss, tuple(answered))
