"""Fleet file, unit-id layout, scaling, inventory and vendor map validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ess_simulator.config import ConfigError, load_config
from ess_simulator.faults import FaultBoard, FaultSpec, UnknownTargetError
from ess_simulator.inventory import dump_inventory
from ess_simulator.simulator import Simulator
from ess_simulator.topology import DeviceKind, plan_fleet
from ess_simulator.vendor_map import load_vendor_map

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_fleet_is_the_seed_fleet() -> None:
    sites = plan_fleet(load_config(None))
    racks = {site.site_id: [bank.racks for bank in site.banks] for site in sites}
    assert racks == {"site1": [8], "site2": [9, 8], "site3": [11], "site4": [9]}
    assert [site.protocol for site in sites] == ["sunspec", "sunspec", "sunspec", "vendor"]
    for site in sites:
        kinds = [device.kind for device in site.devices]
        assert kinds.count(DeviceKind.PCS) == 1
        assert kinds.count(DeviceKind.ETC) == 1


def test_unit_ids_run_bank_racks_next_bank_pcs_meter() -> None:
    site2 = plan_fleet(load_config(None))[1]
    units = {device.device_id: device.unit_id for device in site2.devices}
    assert units["site2/bank1"] == 1
    assert units["site2/bank1/rack1"] == 2
    assert units["site2/bank1/rack9"] == 10
    assert units["site2/bank2"] == 11
    assert units["site2/bank2/rack8"] == 19
    assert units["site2/pcs1"] == 20
    assert units["site2/etc1"] == 21


def test_scale_repeats_sites_with_suffixed_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scale: 3\nsites:\n  - {id: a, banks: {bank1: 2}}\n  - {id: b, banks: {bank1: 1}}\n",
    )
    sites = plan_fleet(load_config(path))
    assert [site.site_id for site in sites] == ["a", "b", "a-2", "b-2", "a-3", "b-3"]
    assert [site.position for site in sites] == list(range(6))
    assert sites[4].devices[1].device_id == "a-3/bank1/rack1"


def test_bad_fleet_file_fails_with_one_readable_message(tmp_path: Path) -> None:
    path = write(tmp_path, "sites:\n  - {id: Site-1, banks: {bank1: 2}}\n")
    with pytest.raises(ConfigError, match=r"sites\.0\.id"):
        load_config(path)
    path = write(tmp_path, "sites:\n  - {id: s1, banks: {bank1: 0}}\n")
    with pytest.raises(ConfigError, match=r"racks must be 1\.\.64"):
        load_config(path)
    path = write(tmp_path, "sites: []\nunknown: 1\n")
    with pytest.raises(ConfigError, match="fleet file"):
        load_config(path)


def test_faults_in_the_file_must_name_known_devices(tmp_path: Path) -> None:
    path = write(
        tmp_path, "sites:\n  - {id: s1, banks: {bank1: 1}}\nfaults:\n  s9/pcs1: {mute: true}\n"
    )
    with pytest.raises(ConfigError, match="s9/pcs1"):
        Simulator(load_config(path))


def test_fault_board_prefers_device_faults_over_site_faults() -> None:
    board = FaultBoard({"s1", "s1/pcs1", "s1/etc1"})
    board.set("s1", FaultSpec(delay_s=1.0))
    board.set("s1/pcs1", FaultSpec(mute=True))
    assert board.effective("s1/pcs1", "s1") == ("s1/pcs1", FaultSpec(mute=True))
    assert board.effective("s1/etc1", "s1") == ("s1", FaultSpec(delay_s=1.0))
    board.set("s1/pcs1", FaultSpec(drop=True, sentinel=True))
    board.consume_drop("s1/pcs1")
    assert board.for_target("s1/pcs1") == FaultSpec(sentinel=True)
    board.set("s1", FaultSpec())  # all knobs off clears
    assert board.for_target("s1") is None
    with pytest.raises(UnknownTargetError):
        board.set("s2", FaultSpec(mute=True))


def test_fault_spec_rejects_unknown_exception_codes() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        FaultSpec(exception_code=9)


def test_inventory_lists_every_device_with_its_address() -> None:
    inventory = yaml.safe_load(dump_inventory(Simulator(load_config(None)).inventory()))
    sites = {site["site_id"]: site for site in inventory["sites"]}
    assert [site["port"] for site in inventory["sites"]] == [15020, 15021, 15022, 15023]
    site1 = sites["site1"]
    assert site1["host"] == "127.0.0.1"
    assert len(site1["devices"]) == 11
    assert site1["devices"][0] == {
        "device_id": "site1/bank1",
        "kind": "bank",
        "unit_id": 1,
        "bank": "bank1",
        "sunspec": {"base_address": 40000, "models": [1, 802, 803]},
    }
    pcs = next(d for d in sites["site2"]["devices"] if d["kind"] == "pcs")
    assert pcs["sunspec"]["models"] == [1, 701, 713, 714]
    vendor_rack = sites["site4"]["devices"][1]
    assert vendor_rack["register_map"]["device"] == "rack"
    assert Path(vendor_rack["register_map"]["file"]).name == "vendor_map.yaml"


def test_packaged_vendor_map_loads_and_uses_both_word_orders() -> None:
    vendor_map = load_vendor_map(Path(load_config(None).vendor_map))
    points = [point for kind in DeviceKind for point in vendor_map.points(kind)]
    assert {point.word_order.value for point in points if point.width > 1} == {"big", "little"}
    assert {point.space.value for point in points} == {"coil", "discrete", "holding", "input"}
    assert {"int16", "uint16", "int32", "uint32", "float32", "float64", "string", "bit"} <= {
        point.type for point in points
    }


def test_vendor_map_rejects_overlaps_and_unknown_fields(tmp_path: Path) -> None:
    overlap = (
        "name: x\ndevices:\n  pcs:\n"
        "    - {name: a, field: power_w, space: input, address: 0, type: float32}\n"
        "    - {name: b, field: current_a, space: input, address: 1, type: uint16}\n"
    )
    with pytest.raises(ConfigError, match="overlaps"):
        load_vendor_map(write(tmp_path, overlap, "map.yaml"))
    unknown = (
        "name: x\ndevices:\n  pcs:\n"
        "    - {name: a, field: nope, space: input, address: 0, type: uint16}\n"
    )
    with pytest.raises(ConfigError, match="unknown field"):
        load_vendor_map(write(tmp_path, unknown, "map.yaml"))


def test_a_site_can_override_the_fleet_schedule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schedule: {period_s: 600}\nsites:\n"
        "  - {id: a, banks: {bank1: 1}, schedule: {c_rate: 0.25}}\n"
        "  - {id: b, banks: {bank1: 1}}\n",
    )
    a, b = plan_fleet(load_config(path))
    assert (a.schedule.period_s, a.schedule.c_rate) == (600.0, 0.25)
    assert (b.schedule.period_s, b.schedule.c_rate) == (600.0, 0.5)
    bad = write(tmp_path, "sites:\n  - {id: a, banks: {bank1: 1}, schedule: {period_s: 1}}\n")
    with pytest.raises(ConfigError, match="site a schedule"):
        load_config(bad)
