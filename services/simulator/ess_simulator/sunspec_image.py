"""A SunSpec device's holding registers from 40000: SunS, common model, its
models, end model. In sentinel mode every measurement reads "not implemented"
while the structure (model ids, lengths, counts, scale factors) stays intact,
so a client can still walk the chain."""

from __future__ import annotations

from ess_simulator.readings import BankReading, RackReading
from ess_simulator.site_model import SiteSnapshot
from ess_simulator.sunspec_battery import ModelValues, Values, bank_models, rack_models
from ess_simulator.sunspec_plant import meter_models, pcs_models
from ess_simulator.topology import DeviceKind, DevicePlan
from ess_sunspec import DEFAULT_BASE_ADDRESS, build_image, encode_model
from ess_sunspec.models import COMMON_1

MANUFACTURER = "ESS-Sim"
VERSION = "1.0.0"
MODEL_NAMES = {
    DeviceKind.BANK: "SIM-BMS-BANK",
    DeviceKind.RACK: "SIM-BMS-RACK",
    DeviceKind.PCS: "SIM-PCS",
    DeviceKind.ETC: "SIM-METER",
}
# Points that describe the layout rather than measure anything.
STRUCTURAL_POINTS = frozenset(
    {"NStr", "NPrt", "NMod", "Idx", "StrNMod", "ModNCell", "PrtTyp", "ID", "IDStr"}
)


def serial_number(device_id: str) -> str:
    return ("SIM-" + device_id.replace("/", "-"))[:32]


def common_values(device: DevicePlan) -> Values:
    return {
        "Mn": MANUFACTURER,
        "Md": MODEL_NAMES[device.kind],
        "Opt": device.site_id,
        "Vr": VERSION,
        "SN": serial_number(device.device_id),
        "DA": device.unit_id,
    }


def _blank_measurements(values: Values) -> Values:
    return {
        name: value if name in STRUCTURAL_POINTS or name.endswith("_SF") else None
        for name, value in values.items()
    }


def device_models(device: DevicePlan, snapshot: SiteSnapshot) -> list[ModelValues]:
    """The models after the common one, filled from the site snapshot."""
    if device.kind is DeviceKind.PCS:
        return pcs_models(snapshot.pcs)
    if device.kind is DeviceKind.ETC:
        return meter_models(snapshot.meter, snapshot.pcs.capacity_wh * 1.2)
    assert device.bank_index is not None
    bank: BankReading = snapshot.banks[device.bank_index - 1]
    if device.kind is DeviceKind.BANK:
        return bank_models(bank)
    assert device.rack_index is not None
    rack: RackReading = bank.racks[device.rack_index - 1]
    return rack_models(rack)


def model_ids(kind: DeviceKind) -> list[int]:
    """Model chain per device kind, as announced in the inventory."""
    chains = {
        DeviceKind.BANK: [1, 802, 803],
        DeviceKind.RACK: [1, 804],
        DeviceKind.PCS: [1, 701, 713, 714],
        DeviceKind.ETC: [1, 203],
    }
    return chains[kind]


def common_block(device: DevicePlan) -> list[int]:
    """The common model's registers; they never change, so callers keep them."""
    return encode_model(COMMON_1, common_values(device))


def sunspec_holding_registers(
    device: DevicePlan, snapshot: SiteSnapshot, sentinel: bool, common: list[int] | None = None
) -> dict[int, int]:
    """Address -> value of every holding register the device answers."""
    blocks = [common if common is not None else common_block(device)]
    for model, fixed, groups in device_models(device, snapshot):
        if sentinel:
            blank_groups = [_blank_measurements(group) for group in groups]
            blocks.append(encode_model(model, _blank_measurements(fixed), blank_groups))
        else:
            blocks.append(encode_model(model, fixed, groups))
    image = build_image(blocks)
    return dict(
        zip(range(DEFAULT_BASE_ADDRESS, DEFAULT_BASE_ADDRESS + len(image)), image, strict=True)
    )
