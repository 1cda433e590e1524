"""Which slots are expected: the fleet registry as slots in service, pure.

A device is expected in the seconds of a window between its commissioning
(inclusive) and its retirement (exclusive), outside every maintenance window
of the device or of its site. Seconds in maintenance are not expected; they are
counted apart so a report can say "in maintenance" instead of "lost". A device
that went silent stays expected (and so shows as source loss) until an
operator retires it or opens maintenance: the registry, not the data, says
what should exist.

Masks are Python ints used as bitsets, bit i = slot `window start + i`, as in
`lossmath`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from ess_loss.lossmath import full_mask

DEFAULT_ZONE = "UTC"


@dataclass(frozen=True)
class RegisteredDevice:
    device: str
    site: str
    table: str
    commissioned_s: int
    retired_s: int | None = None


@dataclass(frozen=True)
class Maintenance:
    id: str
    site: str
    device: str | None  # None: the whole site
    start_s: int
    end_s: int | None  # None: still open
    reason: str = ""

    def covers(self, device: RegisteredDevice) -> bool:
        return self.site == device.site and self.device in (None, device.device)


@dataclass(frozen=True)
class Expected:
    """One device in one window: the slots it is expected in, and those in maintenance."""

    expected: int  # mask
    maintenance: int  # mask (in service, but in maintenance: not expected)


def span_mask(start_s: int, end_s: int, lo_s: int, hi_s: int | None) -> int:
    """Bits of `[lo_s, hi_s)` inside the window `[start_s, end_s)`."""
    a = max(start_s, lo_s)
    b = end_s if hi_s is None else min(end_s, hi_s)
    if b <= a:
        return 0
    return full_mask(b - a) << (a - start_s)


@dataclass(frozen=True)
class FleetRegistry:
    devices: Mapping[str, RegisteredDevice] = field(default_factory=dict)
    maintenance: tuple[Maintenance, ...] = ()
    zones: Mapping[str, str] = field(default_factory=dict)  # site -> IANA zone

    @classmethod
    def of(
        cls,
        devices: Iterable[RegisteredDevice],
        maintenance: Iterable[Maintenance] = (),
        zones: Mapping[str, str] | None = None,
    ) -> FleetRegistry:
        return cls({d.device: d for d in devices}, tuple(maintenance), dict(zones or {}))

    def zone_of(self, site: str) -> str:
        return self.zones.get(site, DEFAULT_ZONE)

    def sites(self) -> set[str]:
        return {d.site for d in self.devices.values()}

    def expected_in(
        self, table: str, start_s: int, end_s: int, sites: Iterable[str] | None = None
    ) -> dict[str, Expected]:
        """Devices of `table` in service at some second of `[start_s, end_s)` (of `sites`)."""
        wanted = None if sites is None else set(sites)
        out: dict[str, Expected] = {}
        for d in self.devices.values():
            if d.table != table or (wanted is not None and d.site not in wanted):
                continue
            service = span_mask(start_s, end_s, d.commissioned_s, d.retired_s)
            if not service:
                continue
            held = 0
            for m in self.maintenance:
                if m.covers(d):
                    held |= span_mask(start_s, end_s, m.start_s, m.end_s)
            held &= service
            out[d.device] = Expected(service & ~held, held)
        return out


def local_day_bounds(zone: str, epoch_s: int) -> tuple[int, int]:
    """`[start, end)` in epoch seconds of the local day (in `zone`) containing `epoch_s`."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(epoch_s, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    start = int(midnight.timestamp())
    next_day = datetime.fromordinal(midnight.toordinal() + 1).replace(tzinfo=tz)
    return start, int(next_day.timestamp())


def valid_zone(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):
        return False
    return True
