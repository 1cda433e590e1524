"""Predicates, candidates and coverage from query texts (pure: no database)."""

from __future__ import annotations

import pytest

from ess_tables.indexes import IndexRefusedError, index_name, plain_identifier
from ess_tables.query_shapes import shapes
from ess_tables.workload import (
    Candidate,
    Predicate,
    Query,
    candidates,
    covering_index,
    parse_log,
    placeholders,
    predicates,
    referenced_columns,
)

RACK = ("device_id", "site", "bank_id", "rack_id", "ts", "soc_pct", "cell_v_min")
COLS = {"rack": RACK}
PER_DEVICE = (
    "SELECT ts, soc_pct FROM rack"
    " WHERE site = $1 AND bank_id = $2 AND rack_id = $3 AND ts >= $4 AND ts < $5"
)


def test_equality_and_range_filters_are_told_apart() -> None:
    found = set(predicates(PER_DEVICE, COLS))
    assert Predicate("rack", "site", "eq") in found
    assert Predicate("rack", "rack_id", "eq") in found
    assert Predicate("rack", "ts", "range") in found
    assert Predicate("rack", "soc_pct", "eq") not in found  # read, not filtered


def test_literals_and_unknown_tables_are_ignored() -> None:
    assert predicates("SELECT 1 FROM other WHERE site = 'x'", COLS) == []
    sql = "SELECT * FROM rack WHERE ts > now() - interval '1 h' AND note = 'site = 3'"
    assert {p.column for p in predicates(sql, COLS)} == {"ts"}


def test_candidate_puts_equality_columns_first_and_time_last() -> None:
    queries = [Query(PER_DEVICE, 10), Query("SELECT * FROM rack WHERE site = $1 AND ts > $2", 50)]
    found = {c.columns for c in candidates(queries, COLS)}
    assert ("site", "bank_id", "rack_id", "ts") in found
    assert ("site", "ts") in found


def test_a_pure_time_range_gets_no_candidate() -> None:
    assert candidates([Query("SELECT * FROM rack WHERE ts >= $1")], COLS) == []


def test_covering_columns_are_what_the_query_reads_besides_the_key() -> None:
    (cand,) = candidates([Query(PER_DEVICE)], COLS)
    assert cand.include == ("soc_pct",)
    assert referenced_columns("SELECT * FROM rack WHERE site = $1", RACK) is None


def test_queries_of_one_filter_shape_make_one_candidate_covering_all_they_read() -> None:
    per_minute = PER_DEVICE.replace("SELECT ts, soc_pct", "SELECT ts, min(cell_v_min)")
    (cand,) = candidates([Query(PER_DEVICE), Query(per_minute)], COLS)
    assert cand.columns == ("site", "bank_id", "rack_id", "ts")
    assert cand.include == ("soc_pct", "cell_v_min")  # one index for both, not two of one name
    assert len(cand.queries) == 2


def test_an_index_with_the_same_leading_columns_covers_a_candidate() -> None:
    existing = {"rack_natural_key": (("device_id", "ts"), ()), "rack_site_ts": (("site", "ts"), ())}
    assert covering_index(Candidate("rack", ("device_id", "ts")), existing) == "rack_natural_key"
    assert covering_index(Candidate("rack", ("site", "ts")), existing) == "rack_site_ts"
    assert covering_index(Candidate("rack", ("site", "ts"), ("soc_pct",)), existing) is None
    assert covering_index(Candidate("rack", ("site", "bank_id", "ts")), existing) is None


def test_query_logs_in_postgres_and_plain_sql_form() -> None:
    pg = (
        "2026-03-01 LOG:  statement: SELECT * FROM rack WHERE site = 'site2' AND ts > now()\n"
        "2026-03-01 LOG:  duration: 3 ms  statement:"
        " SELECT * FROM rack WHERE site = 'site2' AND ts > now()\n"
        "2026-03-01 LOG:  statement: DROP TABLE rack\n"
    )
    (q,) = parse_log(pg)
    assert q.calls == 2
    assert q.source == "log"
    plain = (
        "-- dashboards\nSELECT 1 FROM rack WHERE site = 'a';\nSELECT 2 FROM rack WHERE ts > now();"
    )
    assert len(parse_log(plain)) == 2


def test_placeholders_map_to_the_column_they_are_compared_with() -> None:
    assert placeholders(PER_DEVICE, RACK) == {
        1: ("site", "="),
        2: ("bank_id", "="),
        3: ("rack_id", "="),
        4: ("ts", ">="),
        5: ("ts", "<"),
    }
    assert placeholders("SELECT 1 FROM rack WHERE device_id = ANY($1)", RACK) == {
        1: ("device_id", "= ANY")
    }


@pytest.mark.parametrize("hostile", ['rack"; DROP TABLE rack; --', "Rack", "a b", "x;y", "", "é"])
def test_hostile_identifiers_are_refused_before_any_query(hostile: str) -> None:
    with pytest.raises(IndexRefusedError, match="nothing was run"):
        plain_identifier("table", hostile)


def test_generated_names_fit_postgres_limit() -> None:
    long = index_name(
        "rack", ["module_t_max_c", "module_t_min_c", "module_t_avg_c", "ts"] * 2, True
    )
    assert len(long) <= 63
    assert long.endswith("_cov_idx")


def test_every_known_shape_filters_on_time_and_names_its_parameters() -> None:
    for table in ("bank", "rack", "pcs", "etc"):
        for shape in shapes(table):
            assert "ts >=" in shape.sql
            assert shape.sql.count("$") >= len(set(shape.params))
