"""The cache's aggregates for every series, resolution and bucket equal the same
aggregates computed in SQL from the hypertable the sink wrote.

The readings arrive out of order, some twice, some with values missing, and
some with values whose quantization is a tie; the SQL below is written
independently of the cache's code, from the definitions in docs/cache.md.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ess_cache_layout.measures import MEASURES, RESOLUTIONS
from ess_cache_layout.read import describe
from ess_common.model import TABLES, BankValues, Reading, Table
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from helpers.cache import (
    buckets_of,
    cache_settings,
    migrated,
    produce,
    recent_start,
    redis_namespace,
    running_cache,
    snapshot,
)
from helpers.common import DatabaseFactory, unique
from helpers.sink import run_sink_until, sink_settings

SERIES_FILTERS: dict[str, str] = {
    "dev": "device_id = $1",
    "bank": "site = $1 AND bank_id = $2",
    "site": "site = $1",
}


def _awkward(sent: list[Reading]) -> list[Reading]:
    """Missing values, quantization ties, a silent device, then shuffled with duplicates."""
    rng = random.Random(7)
    out: list[Reading] = []
    start = min(r.ts for r in sent)
    for i, r in enumerate(sent):
        if r.device.key == "site3/bank1/rack5" and r.ts < start + timedelta(seconds=20):
            continue  # source loss
        values = r.values
        if i % 7 == 0:
            blank = {"soc_pct": None} if r.table == "etc" else {"soc_pct": None, "current_a": None}
            values = values.model_copy(
                update={k: v for k, v in blank.items() if k in type(values).model_fields}
            )
        if isinstance(values, BankValues) and i % 3 == 0:
            values = values.model_copy(update={"power_w": rng.choice([0.25, 2.5, -0.35, 0.05])})
        out.append(r.model_copy(update={"values": values}))
    rng.shuffle(out)
    return out + rng.sample(out, 150)


async def _sql_buckets(
    conn: asyncpg.Connection, table: Table, kind: str, params: tuple[Any, ...], seconds: int
) -> dict[int, dict[str, dict[str, Any]]]:
    cols = []
    for m in MEASURES[table]:
        c = m.column
        cols.append(
            f"count({c}), sum(round({c} * {10**m.decimals}::float8)::bigint), min({c}), max({c}),"
            f" avg({c}), (array_agg({c} ORDER BY ts, {c}) FILTER (WHERE {c} IS NOT NULL))[1],"
            f" (array_agg({c} ORDER BY ts DESC, {c} DESC) FILTER (WHERE {c} IS NOT NULL))[1]"
        )
    sql = (
        f"SELECT (extract(epoch FROM ts)::bigint / {seconds}) * {seconds}, {', '.join(cols)}"
        f" FROM {table} WHERE {SERIES_FILTERS[kind]} GROUP BY 1"
    )
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for row in await conn.fetch(sql, *params):
        bucket: dict[str, dict[str, Any]] = {}
        for j, m in enumerate(MEASURES[table]):
            n, sum_q, lo, hi, avg, first, last = row[1 + 7 * j : 8 + 7 * j]
            if n:
                bucket[m.name] = {
                    "count": n,
                    "sum_q": int(sum_q),
                    "min": lo,
                    "max": hi,
                    "avg": avg,
                    "first": first,
                    "last": last,
                }
        out[int(row[0])] = bucket
    return out


async def _all_series(conn: asyncpg.Connection) -> list[tuple[str, Table, str, tuple[Any, ...]]]:
    series: list[tuple[str, Table, str, tuple[Any, ...]]] = []
    for table in TABLES:
        for r in await conn.fetch(f"SELECT DISTINCT device_id, site FROM {table}"):
            series.append((f"dev:{r['device_id']}", table, "dev", (r["device_id"],)))
            series.append((f"site:{r['site']}:{table}", table, "site", (r["site"],)))
    for r in await conn.fetch("SELECT DISTINCT site, bank_id FROM rack"):
        series.append(
            (f"bank:{r['site']}/bank{r['bank_id']}", "rack", "bank", (r["site"], r["bank_id"]))
        )
    return sorted(set(series))


async def test_cache_aggregates_equal_sql_over_the_hypertable(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
) -> None:
    dsn = await migrated(await make_database("local"))
    sent = _awkward(list(readings(seed_fleet(), recent_start(300), seconds=150)))
    unique_slots = len({(r.device.key, r.ts) for r in sent})
    await produce(settings.kafka_bootstrap, telemetry_prefix, sent)

    # The cache first (its start-up rebuild finds SQL empty): the stream path is tested.
    async with redis_namespace(settings.redis_url.get_secret_value()) as ns:
        async with running_cache(
            cache_settings(settings, topic_prefix=telemetry_prefix, dsn=dsn, redis=ns)
        ) as run:
            await run.wait_for_counts(applied=unique_slots, duplicates=len(sent) - unique_slots)
            assert run.total("applied") == unique_slots
        cached = buckets_of(await snapshot(ns.url, ns.prefix), ns.prefix)

    async def all_rows(_: SinkService) -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            counts = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES]
        finally:
            await conn.close()
        return bool(sum(counts) == unique_slots)

    await run_sink_until(
        sink_settings(settings, "local", dsn, telemetry_prefix, unique("g")), all_rows
    )
    conn = await asyncpg.connect(dsn)
    try:
        compared = 0
        for series, table, kind, params in await _all_series(conn):
            for res in RESOLUTIONS:
                expected = await _sql_buckets(conn, table, kind, params, res.seconds)
                mine = {b: v for (r, s, b), v in cached.items() if r == res.name and s == series}
                assert set(mine) == set(expected), (series, res.name)
                for start, sql_bucket in expected.items():
                    got = describe(series, mine[start])
                    assert set(got) == set(sql_bucket), (series, res.name, start)
                    for name, want in sql_bucket.items():
                        agg = mine[start][name]
                        decimals = next(m.decimals for m in MEASURES[table] if m.name == name)
                        where = (series, res.name, start, name)
                        assert agg.n == want["count"], where
                        assert agg.sum_q == want["sum_q"], where
                        assert (agg.min, agg.max) == (want["min"], want["max"]), where
                        assert (agg.first, agg.last) == (want["first"], want["last"]), where
                        assert got[name]["mean"] == pytest.approx(
                            want["avg"], abs=0.5 * 10**-decimals, rel=1e-12
                        ), where
                        compared += 1
    finally:
        await conn.close()
    assert compared > 4 * 62 * 3  # every device, resolution and a few measures at least
