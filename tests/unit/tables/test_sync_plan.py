"""Cross-cluster sync, pure parts: missing slots become runs, runs become bounded chunks."""

from __future__ import annotations

from ess_loss.lossmath import bits_of_runs
from ess_tables.crosssync import SlotGap, chunk_gaps, gaps_from_bits
from ess_tables.presence import bits_from_seconds

E0 = 1_764_547_200  # 2025-12-01T00:00:00Z


def test_missing_bits_become_runs_per_device() -> None:
    bits = bits_of_runs([(0, 2), (5, 6)])
    assert gaps_from_bits("site1/pcs1", E0, bits) == [
        SlotGap("site1/pcs1", E0, E0 + 2),
        SlotGap("site1/pcs1", E0 + 5, E0 + 6),
    ]
    assert gaps_from_bits("site1/pcs1", E0, 0) == []


def test_chunks_never_exceed_the_row_bound_and_cover_every_slot() -> None:
    gaps = [SlotGap("a", E0, E0 + 250), SlotGap("b", E0, E0 + 30), SlotGap("c", E0, E0 + 80)]
    chunks = list(chunk_gaps(gaps, max_rows=100))
    assert all(sum(g.slots for g in chunk) <= 100 for chunk in chunks)
    covered = sorted(
        (g.device, s) for chunk in chunks for g in chunk for s in range(g.start_s, g.end_s)
    )
    expected = sorted((g.device, s) for g in gaps for s in range(g.start_s, g.end_s))
    assert covered == expected


def test_present_seconds_become_bits_and_stray_seconds_are_ignored() -> None:
    assert bits_from_seconds([0, 3, 3, 9], 10) == 0b1000001001
    assert bits_from_seconds([-1, 10, 2], 10) == 0b100
