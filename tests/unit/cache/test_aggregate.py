"""Merge rules of the cache's aggregates: order-free, exact, and round-tripping storage."""

from __future__ import annotations

import itertools
import random

import pytest

from ess_cache_layout.aggregate import Agg, aggregate_values, decode_bucket, encode_bucket, quantize
from ess_cache_layout.measures import MEASURES


def _merged(parts: list[Agg]) -> Agg:
    total = parts[0].copy()
    for p in parts[1:]:
        total.merge(p)
    return total


def test_merging_in_any_order_gives_the_same_aggregate_even_with_ties() -> None:
    # Three devices at the same two slots: first and last are decided by value on ties.
    parts = [
        Agg.of(51.5, quantize(51.5, 3), 100),
        Agg.of(49.0, quantize(49.0, 3), 100),
        Agg.of(50.2, quantize(50.2, 3), 101),
        Agg.of(47.7, quantize(47.7, 3), 101),
        Agg.of(52.0, quantize(52.0, 3), 101),
    ]
    results = {tuple(_merged(list(order)).as_list()) for order in itertools.permutations(parts)}
    assert len(results) == 1
    merged = _merged(parts)
    assert (merged.n, merged.min, merged.max) == (5, 47.7, 52.0)
    assert (merged.first, merged.first_slot) == (49.0, 100)  # lowest value at the first slot
    assert (merged.last, merged.last_slot) == (52.0, 101)  # highest value at the last slot
    assert merged.sum_q == 51500 + 49000 + 50200 + 47700 + 52000
    assert merged.mean(3) == pytest.approx((51.5 + 49.0 + 50.2 + 47.7 + 52.0) / 5)


def test_sums_are_exact_integers_so_grouping_does_not_change_them() -> None:
    rng = random.Random(3)
    values = [rng.uniform(3.2, 3.4) for _ in range(2000)]
    parts = [Agg.of(v, quantize(v, 6), i) for i, v in enumerate(values)]
    one_by_one = _merged(parts)
    halves = _merged([_merged(parts[:700]), _merged(parts[700:])])
    assert one_by_one.sum_q == halves.sum_q == sum(round(v * 1e6) for v in values)
    # A float sum in another order would differ in the last bits; the mean does not.
    assert one_by_one.mean(6) == halves.mean(6)


def test_quantization_rounds_ties_to_even_like_postgresql() -> None:
    assert quantize(0.25, 1) == 2  # 2.5 -> 2
    assert quantize(0.35, 1) == 4  # 3.5 (as a double product) -> 4
    assert quantize(-0.25, 1) == -2
    assert quantize(3.2528762221270453, 6) == 3252876


def test_a_bucket_round_trips_through_its_binary_form() -> None:
    bucket = aggregate_values(
        "rack",
        [
            (10, {"soc_pct": 55.5, "cell_v_max": 3.341, "cell_v_min": None}),
            (11, {"soc_pct": 54.9, "cell_v_max": 3.339, "voltage_v": 801.25}),
        ],
    )
    blob = encode_bucket("rack", bucket)
    assert len(blob) == 1 + 64 * len(MEASURES["rack"])
    assert decode_bucket("rack", blob) == bucket
    assert set(bucket) == {"soc", "cell_v_max", "voltage"}  # missing values are not counted
    assert bucket["soc"].first == 55.5
    assert bucket["soc"].last == 54.9


def test_an_unknown_blob_version_is_refused() -> None:
    blob = bytearray(encode_bucket("pcs", {}))
    blob[0] = 9
    with pytest.raises(ValueError, match="version 9"):
        decode_bucket("pcs", bytes(blob))
