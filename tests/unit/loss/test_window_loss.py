"""One window's loss as the detector and `essctl loss` both compute it (`ess_loss.window`)."""

from __future__ import annotations

from collections.abc import Mapping

from ess_loss.lossmath import SlotCounts, full_mask
from ess_loss.slots import SlotTracker
from ess_loss.window import loss_of_window, site_of_device, window_loss

E0 = 1_796_040_000  # 2026-11-30T12:00:00Z, minute-aligned
RACK1 = "site1/bank1/rack1"
RACK2 = "site2/bank1/rack1"


def _tracker(seen: Mapping[str, range]) -> SlotTracker:
    tracker = SlotTracker(block_s=3600, touch_s=60)
    for device, seconds in seen.items():
        for s in seconds:
            tracker.add("rack", device, E0 + s, now=0.0)
    return tracker


def test_sites_come_from_the_device_key() -> None:
    assert site_of_device(RACK1) == "site1"
    assert site_of_device("site-9/pcs1") == "site-9"


async def test_clusters_that_do_not_answer_are_left_out() -> None:
    tracker = _tracker({RACK1: range(60)})
    answers = {"local": {RACK1: full_mask(60)}, "cloud": None}

    async def presence_of(cluster: str) -> Mapping[str, int] | None:
        return answers[cluster]

    found = await window_loss(
        tracker,
        "rack",
        E0,
        E0 + 60,
        expected={RACK1},
        clusters=("local", "cloud"),
        presence_of=presence_of,
    )
    assert found is not None
    assert found.clusters == ("local",)
    assert found.loss.total("local") == SlotCounts(60, 60, 60)
    assert found.loss.total("cloud") == SlotCounts(0, 0, 0)

    async def nobody(cluster: str) -> Mapping[str, int] | None:
        return None

    assert (
        await window_loss(
            tracker, "rack", E0, E0 + 60, expected={RACK1}, clusters=("local",), presence_of=nobody
        )
        is None
    )


def test_expected_devices_nobody_heard_are_all_source_loss() -> None:
    loss = loss_of_window(
        _tracker({}), "rack", E0, E0 + 60, expected={RACK1}, present={"local": {}}
    )
    assert loss.total("local") == SlotCounts(60, 0, 0)
    assert loss.by_site("local") == {"site1": SlotCounts(60, 0, 0)}


def test_a_device_a_cluster_holds_counts_as_reached_even_unseen_in_kafka() -> None:
    # The scan missed RACK2 entirely, and saw only half of RACK1; the clusters prove more.
    tracker = _tracker({RACK1: range(30)})
    present = {"local": {RACK1: full_mask(60), RACK2: full_mask(20)}, "cloud": {}}
    loss = loss_of_window(tracker, "rack", E0, E0 + 60, expected={RACK1}, present=present)
    assert loss.by_site("local") == {
        "site1": SlotCounts(60, 60, 60),
        "site2": SlotCounts(60, 20, 20),
    }
    assert loss.by_site("cloud") == {
        "site1": SlotCounts(60, 60, 0),
        "site2": SlotCounts(60, 20, 0),
    }
    (rack1,) = [d for d in loss.devices if d.device == RACK1]
    assert rack1.seen_in_kafka == full_mask(30)
    assert rack1.sink_missing["cloud"] == full_mask(60)
