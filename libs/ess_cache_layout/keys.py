"""The Redis key schema of the cache (documented in docs/cache.md).

Every key starts with a prefix (`ESS_CACHE_KEY_PREFIX`, default `ess`). A
*series* is what an aggregate is about: one device, the racks of one bank, or
all devices of one table at one site. The Lua scripts build the same names
from the parts Python hands them; tests read back what the scripts wrote.
"""

from __future__ import annotations

from ess_common.model import TABLES, DeviceId, Table


def device_series(device_key: str) -> str:
    return f"dev:{device_key}"


def bank_series(site: str, bank: int) -> str:
    """The racks of one bank (their readings, not the bank controller's own)."""
    return f"bank:{site}/bank{bank}"


def site_series(site: str, table: Table) -> str:
    return f"site:{site}:{table}"


def series_of(device: DeviceId) -> tuple[str, ...]:
    """Every series a reading of `device` counts in: itself, its bank (racks), its site."""
    own = device_series(device.key)
    site = site_series(device.site, device.table)
    if device.table == "rack" and device.bank is not None:
        return (own, bank_series(device.site, device.bank), site)
    return (own, site)


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def agg(self, resolution: str, series: str, bucket: int) -> str:
        return f"{self.prefix}:agg:{resolution}:{series}:{bucket}"

    def seen(self, device_key: str, day: int) -> str:
        return f"{self.prefix}:seen:{device_key}:{day}"

    def latest(self, device_key: str) -> str:
        return f"{self.prefix}:latest:{device_key}"

    def devices(self, site: str) -> str:
        return f"{self.prefix}:devices:{site}"

    @property
    def sites(self) -> str:
        return f"{self.prefix}:sites"

    def summary(self, site: str) -> str:
        return f"{self.prefix}:summary:{site}"

    def anomalies(self, site: str) -> str:
        return f"{self.prefix}:anomalies:{site}"

    def stale(self, site: str) -> str:
        return f"{self.prefix}:stale:{site}"

    @property
    def marker(self) -> str:
        return f"{self.prefix}:meta:marker"

    @property
    def rebuild_lock(self) -> str:
        return f"{self.prefix}:meta:rebuild-lock"

    def pattern(self) -> str:
        """SCAN pattern matching every key of this cache."""
        return f"{self.prefix}:*"


def table_of_series(series: str) -> Table:
    """The table whose readings a series aggregates."""
    kind, _, rest = series.partition(":")
    if kind == "dev":
        return DeviceId.parse(rest).table
    if kind == "bank":
        return "rack"
    if kind == "site":
        table = rest.rpartition(":")[2]
        for known in TABLES:
            if table == known:
                return known
    raise ValueError(f"not a series: {series!r}")


def parse_agg_key(key: str, prefix: str) -> tuple[str, str, int]:
    """`<prefix>:agg:<resolution>:<series>:<bucket>` -> (resolution, series, bucket)."""
    head = f"{prefix}:agg:"
    if not key.startswith(head):
        raise ValueError(f"not an aggregate key under {prefix!r}: {key!r}")
    resolution, _, rest = key[len(head) :].partition(":")
    series, _, bucket = rest.rpartition(":")
    return resolution, series, int(bucket)
