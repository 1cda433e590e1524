"""The machine-readable list of what the simulator serves, for generating
the collector's inventory configuration. Pure: plans and ports in, data out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ess_simulator.sunspec_image import model_ids
from ess_simulator.topology import DeviceKind, DevicePlan, SitePlan
from ess_sunspec import DEFAULT_BASE_ADDRESS

INVENTORY_VERSION = 1


def _device_entry(
    device: DevicePlan, site: SitePlan, vendor_map_path: str, vendor_map_name: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "device_id": device.device_id,
        "kind": device.kind.value,
        "unit_id": device.unit_id,
    }
    if device.bank_index is not None:
        entry["bank"] = site.banks[device.bank_index - 1].name
    if device.rack_index is not None:
        entry["rack"] = device.rack_index
    if site.protocol == "sunspec":
        entry["sunspec"] = {"base_address": DEFAULT_BASE_ADDRESS, "models": model_ids(device.kind)}
    else:
        entry["register_map"] = {
            "file": vendor_map_path,
            "name": vendor_map_name,
            "device": device.kind.value,
        }
    return entry


def build_inventory(
    sites: Sequence[SitePlan],
    *,
    host: str,
    ports: Mapping[str, int],
    seed: int,
    vendor_map_path: str,
    vendor_map_name: str,
) -> dict[str, Any]:
    return {
        "inventory_version": INVENTORY_VERSION,
        "source": "ess_simulator",
        "seed": seed,
        "device_kinds": [kind.value for kind in DeviceKind],
        "sites": [
            {
                "site_id": site.site_id,
                "name": site.name,
                "host": host,
                "port": ports[site.site_id],
                "protocol": site.protocol,
                "framing": site.framing,
                "devices": [
                    _device_entry(device, site, vendor_map_path, vendor_map_name)
                    for device in site.devices
                ],
            }
            for site in sites
        ],
    }


def dump_inventory(inventory: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(inventory), sort_keys=False, default_flow_style=None, width=100)
