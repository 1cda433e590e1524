"""One window's loss as the detector, `essctl loss` and `loss_report` all compute it
(`ess_loss.window`): who is expected comes from the fleet registry, what is pending
from the sink groups' commits."""

from __future__ import annotations

from collections.abc import Mapping

from ess_loss.lossmath import SlotCounts, full_mask
from ess_loss.service_time import FleetRegistry, Maintenance, RegisteredDevice
from ess_loss.slots import SlotTracker
from ess_loss.window import loss_of_window, site_of_device, window_loss

E0 = 1_796_040_000  # 2026-11-30T12:00:00Z, minute-aligned
RACK1 = "site1/bank1/rack1"
RACK2 = "site2/bank1/rack1"
FLEET = FleetRegistry.of(
    [
        RegisteredDevice(RACK1, "site1", "rack", E0 - 86400),
        RegisteredDevice(RACK2, "site2", "rack", E0 - 86400),
    ]
)


def _tracker(seen: Mapping[str, range], partition: int = 0) -> SlotTracker:
    tracker = SlotTracker(block_s=3600, touch_s=60)
    offset = 0
    for device, seconds in seen.items():
        found = []
        for s in seconds:
            tracker.add("rack", device, E0 + s, now=0.0)
            found.append((device, E0 + s, offset))
            offset += 1
        tracker.note_offsets("rack", partition, found)
    return tracker


def test_sites_come_from_the_device_key() -> None:
    assert site_of_device(RACK1) == "site1"
    assert site_of_device("site-9/pcs1") == "site-9"


async def test_clusters_that_do_not_answer_are_left_out() -> None:
    tracker = _tracker({RACK1: range(60), RACK2: range(60)})
    both = {RACK1: full_mask(60), RACK2: full_mask(60)}
    answers = {"local": both, "cloud": None}

    async def presence_of(cluster: str) -> Mapping[str, int] | None:
        return answers[cluster]

    found = await window_loss(
        tracker,
        "rack",
        E0,
        E0 + 60,
        registry=FLEET,
        clusters=("local", "cloud"),
        presence_of=presence_of,
    )
    assert found is not None
    assert found.clusters == ("local",)
    assert found.loss.total("local") == SlotCounts(120, 120, 120)
    assert found.loss.total("cloud") == SlotCounts(0, 0, 0)

    async def nobody(cluster: str) -> Mapping[str, int] | None:
        return None

    assert (
        await window_loss(
            tracker, "rack", E0, E0 + 60, registry=FLEET, clusters=("local",), presence_of=nobody
        )
        is None
    )


def test_registered_devices_nobody_heard_are_all_source_loss() -> None:
    loss = loss_of_window(
        _tracker({}), "rack", E0, E0 + 60, registry=FLEET, present={"local": {}}, sites={"site1"}
    )
    assert loss.total("local") == SlotCounts(60, 0, 0)
    assert loss.by_site("local") == {"site1": SlotCounts(60, 0, 0)}


def test_a_stored_slot_counts_as_reached_even_unseen_in_kafka() -> None:
    # The scan missed RACK2 entirely, and saw only half of RACK1; the clusters prove more.
    tracker = _tracker({RACK1: range(30)})
    present = {"local": {RACK1: full_mask(60), RACK2: full_mask(20)}, "cloud": {}}
    loss = loss_of_window(tracker, "rack", E0, E0 + 60, registry=FLEET, present=present)
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


def test_a_device_commissioned_mid_window_is_expected_from_then_on() -> None:
    fleet = FleetRegistry.of([RegisteredDevice(RACK1, "site1", "rack", E0 + 40)])
    tracker = _tracker({RACK1: range(40, 60)})
    loss = loss_of_window(
        tracker,
        "rack",
        E0,
        E0 + 60,
        registry=fleet,
        present={"local": {RACK1: full_mask(20) << 40}},
    )
    assert loss.total("local") == SlotCounts(20, 20, 20)
    assert loss.total("local").total_pct == 0.0
    before = loss_of_window(tracker, "rack", E0 - 60, E0, registry=fleet, present={"local": {}})
    assert before.devices == ()


def test_a_retired_device_is_not_expected_after_its_retirement() -> None:
    fleet = FleetRegistry.of([RegisteredDevice(RACK1, "site1", "rack", E0 - 86400, E0 + 15)])
    loss = loss_of_window(_tracker({}), "rack", E0, E0 + 60, registry=fleet, present={"local": {}})
    assert loss.total("local") == SlotCounts(15, 0, 0)
    later = loss_of_window(
        _tracker({}), "rack", E0 + 60, E0 + 120, registry=fleet, present={"local": {}}
    )
    assert later.devices == ()


def test_maintenance_of_the_site_is_not_expected_and_counted_apart() -> None:
    fleet = FleetRegistry.of(
        FLEET.devices.values(), [Maintenance("m1", "site1", None, E0 + 10, E0 + 30, "fan")]
    )
    loss = loss_of_window(
        _tracker({RACK1: range(60)}),
        "rack",
        E0,
        E0 + 60,
        registry=fleet,
        present={"local": {RACK1: full_mask(10) | full_mask(30) << 30}},
        sites={"site1"},
    )
    assert loss.total("local") == SlotCounts(40, 40, 40, maintenance=20)


def test_a_device_with_data_but_no_registration_is_listed_not_counted() -> None:
    loss = loss_of_window(
        _tracker({"site3/bank1/rack1": range(60)}),
        "rack",
        E0,
        E0 + 60,
        registry=FleetRegistry(),
        present={"local": {}},
    )
    assert loss.devices == ()
    assert loss.unregistered == ("site3/bank1/rack1",)


def test_slots_a_sink_group_has_not_consumed_yet_are_pending_not_loss() -> None:
    tracker = _tracker({RACK1: range(60)}, partition=2)  # offsets 0..59 on partition 2
    present = {"local": {RACK1: full_mask(60)}, "cloud": {RACK1: full_mask(20)}}
    behind = loss_of_window(
        tracker,
        "rack",
        E0,
        E0 + 60,
        registry=FLEET,
        present=present,
        committed={"local": {2: 60}, "cloud": {2: 20}},
        sites={"site1"},
    )
    assert behind.total("cloud") == SlotCounts(60, 60, 20, pending=40)
    assert behind.total("cloud").sink_loss == 0
    assert behind.total("cloud").total_loss == 0
    assert behind.pending
    (rack1,) = behind.devices
    assert rack1.sink_missing["cloud"] == 0  # nothing to replay
    passed = loss_of_window(
        tracker,
        "rack",
        E0,
        E0 + 60,
        registry=FLEET,
        present=present,
        committed={"local": {2: 60}, "cloud": {2: 60}},
        sites={"site1"},
    )
    assert passed.total("cloud") == SlotCounts(60, 60, 20)
    assert passed.total("cloud").sink_loss == 40
    assert not passed.pending
