"""`essctl index` against real TimescaleDB on both clusters, each test in its own databases."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
import orjson
import pytest

from ess_ctl.__main__ import run
from ess_tables.indexes import (
    BuildProgress,
    IndexRefusedError,
    create_index,
    list_indexes,
    plan_create,
    table_info,
)
from ess_tables.schema import migrate
from helpers.common import DatabaseFactory

RACKS = """
INSERT INTO rack (device_id, site, bank_id, rack_id, ts, read_at, soc_pct, voltage_v,
                  current_a, cell_v_max, cell_v_min, module_t_max_c)
SELECT 'site2/bank' || b || '/rack' || r, 'site2', b, r, t, t, 50 + r, 800, 10, 3.4, 3.3, 30
FROM generate_series(1, 2) b, generate_series(1, 4) r,
     generate_series('2026-03-01'::timestamptz, '2026-03-01'::timestamptz + $1::interval
                     - interval '1 s', $2::interval) t
"""
PER_DEVICE = (
    "SELECT ts, soc_pct, voltage_v, current_a, cell_v_min, cell_v_max, module_t_max_c FROM rack"
    " WHERE site = $1 AND bank_id = $2 AND rack_id = $3 AND ts >= $4 AND ts < $5 ORDER BY ts"
)
COVER = "soc_pct,voltage_v,current_a,cell_v_max,cell_v_min,module_t_max_c"


async def _prepare(
    dsn: str, span: timedelta = timedelta(hours=3), step: timedelta = timedelta(seconds=1)
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute(RACKS, span, step)
        await conn.execute("VACUUM ANALYZE rack")
    finally:
        await conn.close()


@pytest.fixture
async def clusters(
    make_database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A migrated database with 3 h of 8 racks on each cluster; essctl points at them."""
    dsns = {c: await make_database(c) for c in ("local", "cloud")}
    await asyncio.gather(*(_prepare(d) for d in dsns.values()))
    monkeypatch.setenv("ESS_DB_LOCAL_DSN", dsns["local"])
    monkeypatch.setenv("ESS_DB_CLOUD_DSN", dsns["cloud"])
    return dsns


async def essctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(run, ["index", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


async def _index_names(dsn: str) -> dict[str, bool]:
    conn = await asyncpg.connect(dsn)
    try:
        return {i.name: i.valid for i in await list_indexes(conn, await table_info(conn, "rack"))}
    finally:
        await conn.close()


async def test_create_list_and_drop_on_both_clusters(
    clusters: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await essctl(
        capsys, "create", "--table", "rack", "--columns", "site,bank_id,ts", "--cluster", "all"
    )
    assert code == 0, err
    assert "transaction_per_chunk" in out
    assert "chunk" in err  # progress per chunk on stderr
    code, out, _ = await essctl(capsys, "list", "--table", "rack", "--json")
    listed = orjson.loads(out)["clusters"]
    for cluster in ("local", "cloud"):
        (made,) = [i for i in listed[cluster] if i["name"] == "rack_site_bank_id_ts_idx"]
        assert made["valid"]
        assert made["columns"] == ["site", "bank_id", "ts"]
        assert made["chunks"] >= 1
        assert made["size_bytes"] > 0
        (key,) = [i for i in listed[cluster] if i["name"] == "rack_natural_key"]
        assert key["constraint"] == "rack_natural_key"
    code, out, err = await essctl(capsys, "drop", "rack_site_bank_id_ts_idx", "--cluster", "all")
    assert code == 0, err
    for dsn in clusters.values():
        assert "rack_site_bank_id_ts_idx" not in await _index_names(dsn)


HOSTILE = [
    ("create", "--table", 'rack"; DROP TABLE rack; --', "--columns", "site,ts"),
    ("create", "--table", "rack", "--columns", "site,ts); DROP TABLE rack; --"),
    ("create", "--table", "rack", "--columns", "no_such_column,ts"),
    ("create", "--table", "pg_class", "--columns", "relname"),
    ("create", "--table", "rack", "--columns", "site,ts", "--include", "x'y"),
    ("drop", "rack_natural_key"),
    ("drop", "rack_site_ts"),  # the schema's own: `essctl db migrate` would build it again
    ("drop", "rack_ts_idx"),  # TimescaleDB's time index
    ("drop", 'rack_site_ts"; DROP TABLE rack; --'),
    ("drop", "pg_class_oid_index"),
    ("drop", "no_such_index"),
    ("list", "--table", "rack;"),
    ("bench", "--table", "rack' OR '1'='1"),
    ("bench", "--table", "rack", "--index", "rack_site_ts; DROP TABLE rack"),
    ("bench", "--table", "rack", "--index", "pcs_site_ts"),  # not an index of rack
]


async def _statements(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT query, sum(calls)::bigint AS calls FROM pg_stat_statements WHERE dbid ="
            " (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY 1"
        )
        return {r["query"]: int(r["calls"]) for r in rows}
    finally:
        await conn.close()


async def test_hostile_identifiers_are_refused_and_only_catalog_reads_reach_the_server(
    clusters: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = {c: await _statements(d) for c, d in clusters.items()}
    for argv in HOSTILE:
        for cluster in ("local", "cloud") if argv[0] == "bench" else ("all",):
            code, out, err = await essctl(capsys, *argv, "--cluster", cluster)
            assert code == 2, (argv, out, err)
            assert "refused" in err, (argv, err)
    for cluster, dsn in clusters.items():
        after = await _statements(dsn)
        new = [q for q, n in after.items() if n > before[cluster].get(q, 0)]
        assert new, "the catalog reads are recorded"
        for query in new:
            assert query.lstrip().upper().startswith(("SELECT", "WITH")), query
        for word in ("CREATE", "DROP", "ALTER", "INSERT", "DELETE", "UPDATE", "TRUNCATE"):
            assert not [q for q in new if word in q.upper().split()], word
    for dsn in clusters.values():
        names = await _index_names(dsn)
        assert {"rack_natural_key", "rack_site_ts"} <= set(names)


async def test_suggest_from_the_recorded_workload(
    clusters: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await essctl(capsys, "create", "--table", "rack", "--columns", "quality")
    assert code == 0, err
    conn = await asyncpg.connect(clusters["local"])
    try:
        hi = await conn.fetchval("SELECT max(ts) FROM rack")
        for rack in (1, 2, 3):
            for _ in range(5):
                await conn.fetch(PER_DEVICE, "site2", 1, rack, hi.replace(hour=hi.hour - 1), hi)
        await conn.fetch(
            "SELECT count(*) FROM rack WHERE device_id = $1 AND ts >= $2 AND ts < $3",
            "site2/bank1/rack1",
            hi.replace(hour=hi.hour - 1),
            hi,
        )
    finally:
        await conn.close()
    code, out, err = await essctl(capsys, "suggest", "--cluster", "local", "--json")
    assert code == 0, err
    (rack,) = [t for t in orjson.loads(out)["clusters"]["local"]["tables"] if t["table"] == "rack"]
    assert "pg_stat_statements" in rack["sources"]
    by_cols = {tuple(s["columns"]): s for s in rack["suggestions"]}
    wanted = by_cols[("site", "bank_id", "rack_id", "ts")]
    assert wanted["covered_by"] is None
    assert wanted["include"]
    (m,) = wanted["measured"]
    assert m["cost_after"] < m["cost_before"] * 0.8
    assert "Index Only Scan" in m["nodes_after"]
    assert by_cols[("device_id", "ts")]["covered_by"] == "rack_natural_key"
    assert "rack_quality_idx" in rack["drop"]
    # the schema's own indexes are never proposed for dropping, even when never scanned:
    # nothing reads the (empty) bank table here
    (bank,) = [t for t in orjson.loads(out)["clusters"]["local"]["tables"] if t["table"] == "bank"]
    code, out, _ = await essctl(capsys, "list", "--cluster", "local", "--table", "bank", "--json")
    listed = {i["name"]: i for i in orjson.loads(out)["clusters"]["local"]}
    assert {n for n, i in listed.items() if i["scans"] == 0 and not i["unique"]} == {
        "bank_site_ts",
        "bank_ts_idx",
    }
    assert all(i["schema_owned"] for i in listed.values())
    assert bank["drop"] == []


async def test_bench_shows_the_index_replacing_the_scan(
    clusters: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await essctl(
        capsys, "bench", "--table", "rack", "--columns", "site,bank_id,rack_id,ts",
        "--include", COVER, "--runs", "3", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = orjson.loads(out)
    per_device = result["queries"][0]
    assert per_device["query"].startswith("dashboard per-device")
    assert "Index Only Scan" in per_device["nodes_with"]
    assert "Index Only Scan" not in per_device["nodes_without"]
    assert any(result["index"] in name for name in per_device["indexes_with"])
    assert result["index"] not in await _index_names(clusters["local"])  # not --keep


async def test_bench_of_an_existing_index_hides_it_for_the_runs_without(
    clusters: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await essctl(
        capsys, "create", "--table", "rack", "--columns", "site,bank_id,rack_id,ts",
        "--include", COVER,
    )  # fmt: skip
    assert code == 0, err
    name = next(n for n in await _index_names(clusters["local"]) if n.endswith("_cov_idx"))
    code, out, err = await essctl(
        capsys, "bench", "--table", "rack", "--index", name, "--runs", "3", "--json"
    )
    assert code == 0, err
    result = orjson.loads(out)
    assert result["how"].startswith("existing, hidden on ")
    per_device = result["queries"][0]
    assert "Index Only Scan" in per_device["nodes_with"]
    assert "Index Only Scan" not in per_device["nodes_without"]
    assert name in per_device["indexes_with"] or any(name in n for n in per_device["indexes_with"])
    assert await _index_names(clusters["local"]) == await _index_names(clusters["local"])
    assert name in await _index_names(clusters["local"])  # hidden, never dropped


async def _ingest(dsn: str, stop: asyncio.Event, stamps: list[float]) -> None:
    conn = await asyncpg.connect(dsn)
    at = 0
    try:
        while not stop.is_set():
            await conn.execute(
                "INSERT INTO rack (device_id, site, bank_id, rack_id, ts, read_at)"
                " VALUES ('site2/bank1/rack1', 'site2', 1, 1,"
                " '2026-03-05'::timestamptz + $1 * interval '1 s', now())",
                at,
            )
            at += 1
            stamps.append(time.monotonic())
    finally:
        await conn.close()


async def test_ingest_keeps_running_while_an_index_is_built(make_database: DatabaseFactory) -> None:
    dsn = await make_database("local")
    await _prepare(dsn, span=timedelta(days=2), step=timedelta(seconds=4))  # 8 chunks
    stop, stamps = asyncio.Event(), list[float]()
    ingest = asyncio.create_task(_ingest(dsn, stop, stamps))
    conn, watch = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    seen: list[BuildProgress] = []
    try:
        await asyncio.sleep(0.3)
        plan = await plan_create(conn, "rack", ["site", "bank_id", "rack_id", "ts"], ["soc_pct"])
        assert plan.chunks >= 8
        started = time.monotonic()
        info = await create_index(conn, watch, plan, seen.append, poll_s=0.02)
        ended = time.monotonic()
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await ingest
        await conn.close()
        await watch.close()
    assert info.valid
    assert info.chunks >= 8
    during = [s for s in stamps if started <= s <= ended]
    assert len(during) >= 3, (len(stamps), ended - started)
    assert seen[-1].phase == "done"


async def test_an_interrupted_build_leaves_no_invalid_index(make_database: DatabaseFactory) -> None:
    dsn = await make_database("cloud")
    await _prepare(dsn, span=timedelta(days=2), step=timedelta(seconds=4))
    conn, watch = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        plan = await plan_create(conn, "rack", ["site", "bank_id", "rack_id", "ts"], ["soc_pct"])
        await conn.execute("SET statement_timeout = '30ms'")
        with pytest.raises(asyncpg.QueryCanceledError):
            await create_index(conn, watch, plan)
    finally:
        await conn.close()
        await watch.close()
    assert plan.name not in await _index_names(dsn)


async def test_a_failed_build_never_drops_an_index_it_did_not_make(
    make_database: DatabaseFactory,
) -> None:
    dsn = await make_database("local")
    await _prepare(dsn, span=timedelta(minutes=10))
    conn, watch = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        key = ["site", "bank_id", "rack_id", "ts"]
        first = await plan_create(conn, "rack", key, ["soc_pct"])
        second = await plan_create(conn, "rack", key, ["current_a"])
        assert first.name == second.name  # same key, both covering: the same name
        await create_index(conn, watch, first)
        with pytest.raises(IndexRefusedError, match="exists already"):
            await create_index(conn, watch, second)  # planned before the first was built
        with pytest.raises(IndexRefusedError, match="with other columns"):
            await plan_create(conn, "rack", key, ["current_a"])
    finally:
        await conn.close()
        await watch.close()
    assert (await _index_names(dsn))[first.name] is True  # still there, still valid
