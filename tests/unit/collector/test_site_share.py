"""Sites split among replicas: buckets are stable, static shares are disjoint and
cover the fleet, a StatefulSet hostname gives the ordinal."""

from __future__ import annotations

import pytest

from ess_collector.bootstrap import site_assignment
from ess_collector.settings import CollectorSettings
from ess_collector.site_share import ordinal_of, site_bucket, sites_in_buckets, static_share
from ess_common.settings import ConfigError

SITES = [f"site{i}" for i in range(40)]


def test_a_site_lands_in_the_same_bucket_in_every_process() -> None:
    assert site_bucket("site1", 24) == site_bucket("site1", 24)
    assert site_bucket("site1", 24) == 617777887 % 24  # CRC-32, not Python's salted hash
    assert sites_in_buckets(SITES, range(24), 24) == frozenset(SITES)


@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
def test_static_shares_are_disjoint_and_cover_the_fleet(replicas: int) -> None:
    shares = [static_share(SITES, k, replicas, 24) for k in range(replicas)]
    assert frozenset().union(*shares) == frozenset(SITES)
    assert sum(len(s) for s in shares) == len(SITES)


def test_the_ordinal_comes_from_a_statefulset_hostname() -> None:
    assert ordinal_of("ess-collector-2") == 2
    assert ordinal_of("collector") is None
    assert ordinal_of("collector-x") is None


def test_a_static_split_without_an_ordinal_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOSTNAME", "laptop")
    settings = CollectorSettings.model_validate(
        {"collector_assignment": "static", "collector_replicas": 3}
    )
    with pytest.raises(ConfigError, match="ESS_COLLECTOR_REPLICA"):
        site_assignment(settings, SITES)
