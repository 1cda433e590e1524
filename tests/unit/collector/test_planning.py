"""Request planning: adjacent spans merge into reads of at most 125 registers."""

from __future__ import annotations

import pytest

from ess_collector.planning import PlanError, ReadRequest, RegisterImage, Space, Span, plan_reads

H, IN, C = Space.HOLDING, Space.INPUT, Space.COIL


def test_adjacent_registers_merge_into_one_read() -> None:
    spans = [Span(H, 0, 1), Span(H, 1, 2), Span(H, 3, 1)]
    assert plan_reads(spans) == [ReadRequest(H, 0, 4)]


def test_a_hole_splits_reads_unless_gap_fill_covers_it() -> None:
    spans = [Span(H, 0, 2), Span(H, 5, 1)]
    assert plan_reads(spans) == [ReadRequest(H, 0, 2), ReadRequest(H, 5, 1)]
    assert plan_reads(spans, gap_fill=2) == [ReadRequest(H, 0, 2), ReadRequest(H, 5, 1)]
    assert plan_reads(spans, gap_fill=3) == [ReadRequest(H, 0, 6)]


def test_reads_never_exceed_the_register_limit_and_never_split_a_point() -> None:
    spans = [Span(H, a, 2) for a in range(0, 300, 2)]  # 150 two-register points
    reads = plan_reads(spans)
    assert [r.count for r in reads] == [124, 124, 52]
    assert all(any(r.covers(s) for r in reads) for s in spans)
    assert [r.count for r in plan_reads(spans, max_registers=10)] == [10] * 30


def test_spaces_are_planned_apart_in_a_fixed_order() -> None:
    spans = [Span(IN, 0, 1), Span(H, 0, 1), Span(C, 0, 1), Span(IN, 1, 1)]
    assert plan_reads(spans) == [ReadRequest(C, 0, 1), ReadRequest(H, 0, 1), ReadRequest(IN, 0, 2)]


def test_bits_may_be_read_2000_at_a_time() -> None:
    spans = [Span(C, a, 1) for a in range(0, 2500, 5)]
    assert [r.count for r in plan_reads(spans, gap_fill=4)] == [1996, 496]


def test_overlapping_and_duplicate_spans_are_read_once() -> None:
    spans = [Span(IN, 16, 1), Span(IN, 16, 1), Span(IN, 15, 2), Span(IN, 17, 2)]
    assert plan_reads(spans) == [ReadRequest(IN, 15, 4)]


def test_a_span_wider_than_one_read_is_refused() -> None:
    with pytest.raises(PlanError):
        plan_reads([Span(H, 0, 126)])


def test_the_image_hands_out_each_span_even_across_reads() -> None:
    image = RegisterImage()
    image.add(ReadRequest(H, 10, 3), [1, 2, 3])
    image.add(ReadRequest(H, 13, 2), [4, 5])
    assert image.get(Span(H, 11, 2)) == [2, 3]
    assert image.get(Span(H, 12, 2)) == [3, 4]  # straddles two reads
    assert image.get(Span(H, 14, 2)) is None  # 15 was never read
    assert image.get(Span(IN, 10, 1)) is None  # another space
