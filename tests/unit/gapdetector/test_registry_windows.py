"""Site time zones for day windows, heal requests split to the request cap (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from ess_common.replay import MAX_DEVICES_PER_REQUEST
from ess_gapdetector.heal import device_chunks
from ess_gapdetector.windows import Window, WindowScheduler, window_containing
from ess_loss.service_time import FleetRegistry, RegisteredDevice, local_day_bounds


def _epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def test_a_seoul_day_is_the_local_day_not_the_utc_one() -> None:
    # 2026-12-01 10:00 in Seoul is 01:00 UTC; its local day began 2026-11-30T15:00Z
    w = window_containing("day", _epoch(2026, 12, 1, 1), "Asia/Seoul")
    assert (w.start_s, w.end_s) == (_epoch(2026, 11, 30, 15), _epoch(2026, 12, 1, 15))
    assert w.length == 86400
    assert window_containing("day", _epoch(2026, 12, 1, 1)).start_s == _epoch(2026, 12, 1)
    assert window_containing("hour", _epoch(2026, 12, 1, 1, 30)).start_s == _epoch(2026, 12, 1, 1)


def test_a_day_with_a_clock_change_has_its_real_length() -> None:
    start, end = local_day_bounds("Europe/Berlin", _epoch(2026, 10, 25, 12))
    assert end - start == 25 * 3600


def test_the_scheduler_closes_day_windows_per_zone() -> None:
    started = _epoch(2026, 11, 30, 12)
    s = WindowScheduler(("day",), ("rack",), 0.0, started, 0.0)
    s.set_zones({"Asia/Seoul"})
    due = s.due([], _epoch(2026, 11, 30, 15) + 1, caught_up_at=float("inf"))
    assert due == [("rack", Window(_epoch(2026, 11, 29, 15), "day", "Asia/Seoul"))]
    due = s.due([], _epoch(2026, 12, 1) + 1, caught_up_at=float("inf"))
    assert ("rack", Window(_epoch(2026, 11, 30), "day")) in due


def test_a_fleet_wide_gap_is_split_into_requests_within_the_cap() -> None:
    missing = {f"site{i // 10}/bank1/rack{i % 10 + 1}": 1 for i in range(12_345)}
    parts = device_chunks(missing)
    assert [len(p) for p in parts] == [5000, 5000, 2345]
    assert all(len(p) <= MAX_DEVICES_PER_REQUEST for p in parts)
    assert set().union(*parts) == set(missing)


def test_sites_follow_their_zone_utc_by_default() -> None:
    fleet = FleetRegistry.of(
        [RegisteredDevice("site1/pcs1", "site1", "pcs", 0)], zones={"site2": "Asia/Seoul"}
    )
    assert fleet.zone_of("site1") == "UTC"
    assert fleet.zone_of("site2") == "Asia/Seoul"
