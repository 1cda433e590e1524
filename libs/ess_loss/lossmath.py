"""Loss accounting, pure: no I/O, no clocks. Slot sets are Python ints used as bitsets.

For one device and one window of `expected` one-second slots (bit i = slot
`window_start + i`):

- `reached`  = slots that reached Kafka. What the detector saw in Kafka, plus
  anything either cluster holds: a row can only get into a cluster through
  Kafka (or a sync from the other cluster, which got it through Kafka), so a
  stored slot proves it reached Kafka even when the detector did not see it.
- `source loss` = expected - reached (never reached Kafka; cannot be healed),
- `pending`     = reached, missing in this cluster, but on a partition its sink
  group has not committed past yet (lag, not loss: never replayed),
- `sink loss`   = reached - present - pending (in Kafka, passed by the sink
  group, missing in this cluster),
- `total loss`  = expected - present - pending = source + sink (the seed's
  figure, 1 - present / expected, once nothing is pending).

`expected` is a mask, not a length: the seconds the device is in service
(`service_time`); seconds in maintenance are counted apart (`maintenance`).

Severity follows the seed: warning above 2 %, critical above 5 % of total
loss; exactly 2 % is still ok. Thresholds are compared exactly (integers),
so 1,728 missing slots of 86,400 (exactly 2 %) is ok and 1,729 is a warning.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

Severity = Literal["ok", "warning", "critical"]
WARNING_ABOVE_PCT = Fraction(2)
CRITICAL_ABOVE_PCT = Fraction(5)


def severity_of_pct(loss_pct: float | Fraction) -> Severity:
    """Severity of a loss percentage: > 5 critical, > 2 warning, else ok."""
    exact = Fraction(loss_pct)
    if exact > CRITICAL_ABOVE_PCT:
        return "critical"
    if exact > WARNING_ABOVE_PCT:
        return "warning"
    return "ok"


def severity_of_counts(lost: int, expected: int) -> Severity:
    """Severity of `lost` of `expected` slots, compared without rounding."""
    if expected <= 0:
        return "ok"
    return severity_of_pct(Fraction(100 * lost, expected))


def pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class SlotCounts:
    """Slot counts of one device (or a sum of devices) in one window for one cluster."""

    expected: int
    reached: int
    present: int
    pending: int = 0  # of reached - present: the sink group has not passed them yet
    maintenance: int = 0  # in service but in maintenance: not in `expected`

    def __post_init__(self) -> None:
        if not 0 <= self.present <= self.reached <= self.expected:
            raise ValueError(f"need 0 <= present <= reached <= expected, got {self}")
        if not 0 <= self.pending <= self.reached - self.present or self.maintenance < 0:
            raise ValueError(f"need 0 <= pending <= reached - present, got {self}")

    @property
    def source_loss(self) -> int:
        return self.expected - self.reached

    @property
    def sink_loss(self) -> int:
        return self.reached - self.present - self.pending

    @property
    def total_loss(self) -> int:
        return self.expected - self.present - self.pending

    @property
    def pending_pct(self) -> float:
        return pct(self.pending, self.expected)

    @property
    def source_pct(self) -> float:
        return pct(self.source_loss, self.expected)

    @property
    def sink_pct(self) -> float:
        return pct(self.sink_loss, self.expected)

    @property
    def total_pct(self) -> float:
        return pct(self.total_loss, self.expected)

    @property
    def severity(self) -> Severity:
        return severity_of_counts(self.total_loss, self.expected)

    def __add__(self, other: SlotCounts) -> SlotCounts:
        return SlotCounts(
            self.expected + other.expected,
            self.reached + other.reached,
            self.present + other.present,
            self.pending + other.pending,
            self.maintenance + other.maintenance,
        )


ZERO = SlotCounts(0, 0, 0)


def full_mask(length: int) -> int:
    return (1 << length) - 1


@dataclass(frozen=True)
class DeviceLoss:
    """One device in one window: counts per cluster and the slots each cluster lacks."""

    device: str
    site: str
    counts: Mapping[str, SlotCounts]  # cluster -> counts
    sink_missing: Mapping[str, int]  # cluster -> bits reached, not present, not pending
    seen_in_kafka: int  # bits the detector saw in Kafka
    pending: Mapping[str, int] = field(default_factory=dict)  # cluster -> bits still in lag


def device_loss(
    device: str,
    site: str,
    length: int,
    kafka_bits: int,
    present_bits: Mapping[str, int],
    *,
    expected_mask: int | None = None,
    maintenance_mask: int = 0,
    pending_in: Collection[str] = (),
) -> DeviceLoss:
    """Loss of one device in a window of `length` slots, for every cluster in `present_bits`.

    `expected_mask`: the slots it is in service (default: all of them);
    `pending_in`: clusters whose sink group has not yet committed past this
    device's slots of the window (what they lack is pending, not loss).
    """
    mask = full_mask(length) if expected_mask is None else expected_mask & full_mask(length)
    kafka_bits &= mask
    reached = kafka_bits
    for bits in present_bits.values():
        reached |= bits & mask
    n_expected, n_reached = mask.bit_count(), reached.bit_count()
    held = maintenance_mask.bit_count()
    counts: dict[str, SlotCounts] = {}
    missing: dict[str, int] = {}
    pending: dict[str, int] = {}
    for cluster, bits in present_bits.items():
        present = bits & mask
        lacks = reached & ~present
        lag = lacks if cluster in pending_in else 0
        counts[cluster] = SlotCounts(
            n_expected, n_reached, present.bit_count(), lag.bit_count(), held
        )
        missing[cluster] = lacks & ~lag
        if lag:
            pending[cluster] = lag
    return DeviceLoss(device, site, counts, missing, kafka_bits, pending)


@dataclass(frozen=True)
class TableWindowLoss:
    """All devices of one table in one window."""

    length: int
    devices: tuple[DeviceLoss, ...]
    unregistered: tuple[str, ...] = ()  # held or seen, but not in the fleet registry

    @property
    def pending(self) -> bool:
        """Some cluster's sink group has not passed this window yet."""
        return any(d.pending for d in self.devices)

    def by_site(self, cluster: str) -> dict[str, SlotCounts]:
        sums: dict[str, SlotCounts] = {}
        for d in self.devices:
            if cluster in d.counts:
                sums[d.site] = sums.get(d.site, ZERO) + d.counts[cluster]
        return sums

    def total(self, cluster: str) -> SlotCounts:
        out = ZERO
        for d in self.devices:
            if cluster in d.counts:
                out = out + d.counts[cluster]
        return out


def table_window_loss(
    length: int,
    devices: Iterable[str],
    site_of: Mapping[str, str],
    kafka_bits: Mapping[str, int],
    present_bits: Mapping[str, Mapping[str, int]],
    *,
    expected: Mapping[str, tuple[int, int]] | None = None,
    pending_in: Mapping[str, Collection[str]] | None = None,
    unregistered: Iterable[str] = (),
) -> TableWindowLoss:
    """Loss of every device of a table; `present_bits` is cluster -> device -> bits.

    `expected`: device -> (expected mask, maintenance mask) from the registry
    (default: every slot of every device in `devices`); `pending_in`: device ->
    clusters whose sink group has not passed its slots yet.
    """
    results = []
    lagging = pending_in or {}
    for device in sorted(set(devices)):
        per_cluster = {c: bits.get(device, 0) for c, bits in present_bits.items()}
        want, held = (None, 0) if expected is None else expected[device]
        results.append(
            device_loss(
                device,
                site_of[device],
                length,
                kafka_bits.get(device, 0),
                per_cluster,
                expected_mask=want,
                maintenance_mask=held,
                pending_in=lagging.get(device, ()),
            )
        )
    return TableWindowLoss(length, tuple(results), tuple(sorted(set(unregistered))))


def runs_of_set_bits(bits: int) -> list[tuple[int, int]]:
    """Half-open runs `[start, end)` of consecutive set bits, lowest first."""
    runs: list[tuple[int, int]] = []
    while bits:
        start = (bits & -bits).bit_length() - 1
        shifted = bits >> start
        length = (shifted ^ (shifted + 1)).bit_length() - 1
        runs.append((start, start + length))
        bits &= ~(full_mask(length) << start)
    return runs


def bits_of_runs(runs: Iterable[tuple[int, int]]) -> int:
    bits = 0
    for start, end in runs:
        bits |= full_mask(end - start) << start
    return bits


def coalesce(intervals: Iterable[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    """Merge half-open intervals that overlap or are at most `max_gap` apart."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def bits_in(bits: int, start: int, end: int) -> int:
    """The bits of `[start, end)`, still at their positions."""
    return bits & (full_mask(end - start) << start)


class RangeLoss:
    """Loss over a range evaluated slice by slice (e.g. days of a month), per device.

    Each slice says which devices it expects (the registry's slots in service),
    so the range's figures are plain sums: a device commissioned, retired or in
    maintenance during the range is expected for its seconds in service only.
    """

    def __init__(self, clusters: Iterable[str]) -> None:
        self.clusters = tuple(clusters)
        self.counts: dict[tuple[str, str], SlotCounts] = {}
        self.sites: dict[str, str] = {}
        self.unregistered: set[str] = set()

    def add(self, loss: TableWindowLoss) -> None:
        self.unregistered.update(loss.unregistered)
        for d in loss.devices:
            self.sites[d.device] = d.site
            for cluster in self.clusters:
                counts = d.counts.get(cluster)
                if counts is not None:
                    key = (cluster, d.device)
                    self.counts[key] = self.counts.get(key, ZERO) + counts

    def device_counts(self, cluster: str) -> dict[str, SlotCounts]:
        return {d: c for (cl, d), c in self.counts.items() if cl == cluster}

    def site_counts(self, cluster: str) -> dict[str, SlotCounts]:
        out: dict[str, SlotCounts] = {}
        for device, counts in self.device_counts(cluster).items():
            site = self.sites[device]
            out[site] = out.get(site, ZERO) + counts
        return out
