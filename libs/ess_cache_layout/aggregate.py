"""Aggregates and their merge rules, the same ones the Lua script applies.

One aggregate covers one measurement of one series in one bucket:
`n`, an exact integer `sum_q` (units of 10**-decimals), `min`, `max`,
`first` (value at the earliest slot) and `last` (value at the latest slot).
Merging is commutative and associative, so the result does not depend on
arrival order: in a group several devices share a slot, and ties are broken
by value (first keeps the lowest, last the highest).

A bucket is stored as one binary string (see `encode_bucket`): exact doubles,
no number formatting, about 450 bytes for a rack.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ess_cache_layout.measures import MEASURES
from ess_common.model import Table


@dataclass(slots=True)
class Agg:
    n: int
    sum_q: int
    min: float
    max: float
    first: float
    first_slot: int
    last: float
    last_slot: int

    @classmethod
    def of(cls, value: float, quantized: int, slot: int) -> Agg:
        return cls(1, quantized, value, value, value, slot, value, slot)

    def merge(self, o: Agg) -> None:
        self.n += o.n
        self.sum_q += o.sum_q
        self.min = min(self.min, o.min)
        self.max = max(self.max, o.max)
        if o.first_slot < self.first_slot or (
            o.first_slot == self.first_slot and o.first < self.first
        ):
            self.first, self.first_slot = o.first, o.first_slot
        if o.last_slot > self.last_slot or (o.last_slot == self.last_slot and o.last > self.last):
            self.last, self.last_slot = o.last, o.last_slot

    def copy(self) -> Agg:
        return Agg(*self.fields())

    def mean(self, decimals: int) -> float:
        return self.sum_q / float(10**decimals) / self.n

    def fields(self) -> tuple[int, int, float, float, float, int, float, int]:
        """`n, sum_q, min, max, first, first_slot, last, last_slot`: the blob's order."""
        return (
            self.n,
            self.sum_q,
            self.min,
            self.max,
            self.first,
            self.first_slot,
            self.last,
            self.last_slot,
        )

    def as_list(self) -> list[int | float]:
        return list(self.fields())

    @classmethod
    def from_list(cls, raw: list[int | float]) -> Agg:
        n, sum_q, lo, hi, first, first_slot, last, last_slot = raw
        return cls(
            int(n),
            int(sum_q),
            float(lo),
            float(hi),
            float(first),
            int(first_slot),
            float(last),
            int(last_slot),
        )


Bucket = dict[str, Agg]

BLOB_VERSION = 1


def _blob_format(table: Table) -> struct.Struct:
    return struct.Struct("<B" + "d" * (8 * len(MEASURES[table])))


_BLOB = {table: _blob_format(table) for table in MEASURES}


def quantize(value: float, decimals: int) -> int:
    """Exact integer units for sums; ties to even (as PostgreSQL's round(float8) on Linux)."""
    return round(value * float(10**decimals))


def encode_bucket(table: Table, bucket: Mapping[str, Agg]) -> bytes:
    """Version byte, then per measurement of `table` (in MEASURES order) 8 little-endian
    doubles `n, sum_q, min, max, first, first_slot, last, last_slot`; all 0 if absent."""
    flat: list[float] = [BLOB_VERSION]
    for m in MEASURES[table]:
        agg = bucket.get(m.name)
        flat += agg.as_list() if agg is not None else [0] * 8
    return _BLOB[table].pack(*flat)


def decode_bucket(table: Table, blob: bytes) -> Bucket:
    values = _BLOB[table].unpack(blob)
    if values[0] != BLOB_VERSION:
        raise ValueError(f"bucket format version {values[0]}, this code reads {BLOB_VERSION}")
    bucket: Bucket = {}
    for j, m in enumerate(MEASURES[table]):
        raw = values[1 + 8 * j : 9 + 8 * j]
        if raw[0] > 0:
            bucket[m.name] = Agg.from_list(list(raw))
    return bucket


def merge_into(target: dict[str, Agg], source: Mapping[str, Agg]) -> None:
    for name, agg in source.items():
        mine = target.get(name)
        if mine is None:
            target[name] = agg.copy()
        else:
            mine.merge(agg)


def aggregate_values(
    table: Table, rows: Iterable[tuple[int, Mapping[str, float | None]]]
) -> Bucket:
    """Fold `(slot, {column: value})` rows of one table into one bucket (the reference)."""
    bucket: Bucket = {}
    for slot, values in rows:
        for m in MEASURES[table]:
            value = values.get(m.column)
            if value is None:
                continue
            merge_into(bucket, {m.name: Agg.of(value, quantize(value, m.decimals), slot)})
    return bucket
