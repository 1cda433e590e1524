"""Build a collector inventory from the simulator's (`python -m ess_simulator inventory`).

    python -m ess_simulator inventory --base-port 15020 | python -m ess_collector.from_simulator

Sites become one endpoint each (with the site's framing); SunSpec devices keep their base address;
vendor devices get the packaged VoltaStack register map of their kind. Only
the simulator's documented inventory format is read, not its code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import yaml

from ess_collector.inventory import Inventory, RegisterMap
from ess_collector.inventory_file import load_inventory
from ess_collector.settings import packaged_inventory

VENDOR_MAP_OF_KIND = {
    "bank": "volta-bank",
    "rack": "volta-rack",
    "pcs": "volta-pcs",
    "etc": "volta-meter",
}


def packaged_register_maps() -> dict[str, RegisterMap]:
    return load_inventory(packaged_inventory()).register_maps


def inventory_from_simulator(
    simulated: Mapping[str, Any], register_maps: Mapping[str, RegisterMap] | None = None
) -> Inventory:
    """The collector inventory of everything a simulator inventory lists."""
    maps = dict(register_maps if register_maps is not None else packaged_register_maps())
    sites = []
    for site in simulated["sites"]:
        devices = []
        for device in site["devices"]:
            entry: dict[str, Any] = {"id": device["device_id"], "unit": device["unit_id"]}
            if "register_map" in device:
                entry["register_map"] = VENDOR_MAP_OF_KIND[device["kind"]]
            elif "sunspec" in device:
                entry["sunspec_base"] = device["sunspec"]["base_address"]
            devices.append(entry)
        endpoint: dict[str, Any] = {"host": site["host"], "port": site["port"], "devices": devices}
        if site.get("framing", "tcp") != "tcp":
            endpoint["framing"] = site["framing"]
        sites.append({"id": site["site_id"], "endpoints": [endpoint]})
    used = {
        d["register_map"]
        for s in sites
        for d in s["endpoints"][0]["devices"]
        if "register_map" in d
    }
    return Inventory.model_validate(
        {"register_maps": {k: v for k, v in maps.items() if k in used}, "sites": sites}
    )


def main() -> None:
    inventory = inventory_from_simulator(yaml.safe_load(sys.stdin))
    document = inventory.model_dump(mode="json", exclude_defaults=True)
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, width=120))


if __name__ == "__main__":
    main()
