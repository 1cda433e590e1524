"""Which slots the cache accepts, and that bitmaps outlive the acceptance window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ess_cache.settings import CacheSettings
from ess_cache.window import Retention
from ess_cache_layout.measures import DAY_S

RETENTION = Retention({"1m": 3600, "15m": 86400, "1h": 86400, "1d": 86400}, 1, 3600)


def _t(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_the_open_day_is_accepted_and_yesterday_only_for_the_late_hour() -> None:
    assert RETENTION.accept_from(_t("2026-03-02T12:00:00")) == _t("2026-03-02T00:00:00")
    assert RETENTION.accept_from(_t("2026-03-02T00:30:00")) == _t("2026-03-01T00:00:00")
    assert RETENTION.accept_from(_t("2026-03-02T01:00:01")) == _t("2026-03-02T00:00:00")
    two_days = Retention(RETENTION.ttl_by_resolution, 2, 3600)
    assert two_days.accept_from(_t("2026-03-02T12:00:00")) == _t("2026-03-01T00:00:00")


def test_a_days_bitmap_outlives_every_moment_its_slots_are_accepted() -> None:
    day = _t("2026-03-01T00:00:00")
    for retention in (RETENTION, Retention(RETENTION.ttl_by_resolution, 3, 0)):
        last_accepting = day
        now = day
        while retention.accept_from(now) <= day:
            last_accepting = now
            now += 60
        assert day + retention.seen_tail_s > last_accepting
        assert last_accepting >= day + DAY_S - 60


def test_ttls_that_shrink_with_coarser_buckets_are_refused() -> None:
    with pytest.raises(ValidationError, match="must not shrink"):
        CacheSettings(cache_ttl_1m_s=7200, cache_ttl_15m_s=3600, _env_file=None)
