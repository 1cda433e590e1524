"""The packaged inventory describes the default simulator fleet, point for point."""

from __future__ import annotations

from pathlib import Path

from ess_collector.from_simulator import inventory_from_simulator
from ess_collector.inventory import Inventory
from ess_collector.inventory_file import load_inventory
from ess_collector.settings import packaged_inventory
from ess_simulator.config import load_config
from ess_simulator.simulator import Simulator
from ess_simulator.vendor_map import load_vendor_map

# Our map splits the vendor's event word into masked alarm and warning views.
SAME_POINT_AS = {"EventAlarms": "EventWord", "EventWarnings": "EventWord"}
VENDOR_KIND = {"volta-bank": "bank", "volta-rack": "rack", "volta-pcs": "pcs", "volta-meter": "etc"}


def _inventory() -> Inventory:
    return load_inventory(packaged_inventory())


def test_the_inventory_generated_from_the_simulator_is_the_packaged_one() -> None:
    generated = inventory_from_simulator(Simulator(load_config(None)).inventory())
    packaged = _inventory()
    assert generated.register_maps == packaged.register_maps
    assert [d.model_dump(exclude={"sunspec_base"}) for d in generated.devices()] == [
        d.model_dump(exclude={"sunspec_base"}) for d in packaged.devices()
    ]
    assert {d.sunspec_base for d in generated.devices() if not d.register_map} == {40000}


def test_every_simulated_device_is_polled_at_its_address() -> None:
    simulated = Simulator(load_config(None)).inventory()
    expected = {
        (
            site["site_id"],
            site["host"],
            site["port"],
            d["device_id"],
            d["unit_id"],
            "register_map" in d,
        )
        for site in simulated["sites"]
        for d in site["devices"]
    }
    ours = {
        (s.id, e.host, e.port, d.id, d.unit, d.register_map is not None)
        for s in _inventory().sites
        for e in s.endpoints
        for d in e.devices
    }
    assert ours == expected
    assert len(ours) == 58


def test_the_vendor_maps_match_the_simulators_register_map() -> None:
    config = load_config(None)
    vendor = load_vendor_map(Path(config.vendor_map))
    for map_name, register_map in _inventory().register_maps.items():
        served = {p.name: p for p in vendor.points(VENDOR_KIND[map_name])}  # type: ignore[arg-type]
        assert {SAME_POINT_AS.get(p.name, p.name) for p in register_map.points} == set(served)
        for point in register_map.points:
            theirs = served[SAME_POINT_AS.get(point.name, point.name)]
            where = f"{map_name}.{point.name}"
            assert (point.space.value, point.address, point.type) == (
                theirs.space.value,
                theirs.address,
                theirs.type,
            ), where
            assert (point.word_order, point.byte_order, point.bit, point.registers) == (
                theirs.word_order,
                theirs.byte_order,
                theirs.bit,
                theirs.registers,
            ), where
            assert (point.scale, point.offset) == (theirs.scale, theirs.offset), where


def test_the_demo_overlay_polls_the_same_fleet_through_the_simulator_service() -> None:
    demo = Path(__file__).parents[3] / "k8s" / "overlays" / "demo" / "collector-inventory.yml"
    packaged = _inventory()
    in_cluster = load_inventory(demo)
    assert in_cluster.register_maps == packaged.register_maps
    assert {e.host for s in in_cluster.sites for e in s.endpoints} == {"ess-simulator"}
    assert [d.model_dump() for d in in_cluster.devices()] == [
        d.model_dump() for d in packaged.devices()
    ]
