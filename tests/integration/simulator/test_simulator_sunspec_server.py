"""SunSpec devices over a real Modbus TCP connection: marker, model chain,
values consistent with the battery model, and correct answers to FC 1-4."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from pymodbus.client import AsyncModbusTcpClient

from ess_simulator.simulator import Simulator
from ess_simulator.site_model import SiteModel
from ess_sunspec import MODELS, DecodedModel, decode_model, walk_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

Connect = Callable[..., AbstractAsyncContextManager[AsyncModbusTcpClient]]
SunSpecReader = Callable[[AsyncModbusTcpClient, int], Awaitable[list[int]]]


def models_of(image: list[int]) -> dict[int, DecodedModel]:
    return {
        header.model_id: decode_model(MODELS[header.model_id], image[header.offset : header.end])
        for header in walk_models(image)
    }


async def test_every_sunspec_device_starts_with_suns_at_40000(
    sim: Simulator, modbus: Connect
) -> None:
    for site in sim.sites[:3]:
        async with modbus(site.site_id) as client:
            for device in site.devices:
                response = await client.read_holding_registers(
                    40000, count=2, device_id=device.unit_id
                )
                assert response.registers == [0x5375, 0x6E53], device.device_id


async def test_model_chains_per_device_kind(
    sim: Simulator, modbus: Connect, sunspec_image: SunSpecReader
) -> None:
    expected = {"bank": [1, 802, 803], "rack": [1, 804], "pcs": [1, 701, 713, 714], "etc": [1, 203]}
    site2 = sim.sites[1]
    async with modbus("site2") as client:
        for device in site2.devices:
            image = await sunspec_image(client, device.unit_id)
            assert image[-2:] == [0xFFFF, 0]
            assert [h.model_id for h in walk_models(image)] == expected[device.kind.value]
            models = models_of(image)
            assert models[1].fixed["DA"] == device.unit_id
            assert models[1].fixed["Mn"] == "ESS-Sim"
            if device.kind.value == "bank":
                racks = site2.banks[(device.bank_index or 0) - 1].racks
                assert models[803].fixed["NStr"] == racks
                assert len(models[803].groups) == racks
            if device.kind.value == "rack":
                assert len(models[804].groups) == models[804].fixed["NMod"] == 8
            if device.kind.value == "pcs":
                assert len(models[714].groups) == models[714].fixed["NPrt"] == 2


async def test_values_match_the_battery_model(
    sim: Simulator, modbus: Connect, sunspec_image: SunSpecReader, frozen_second: int
) -> None:
    site2 = sim.sites[1]
    snapshot = SiteModel(site2, sim.config).snapshot(frozen_second)
    bank = snapshot.banks[0]
    async with modbus("site2") as client:
        bank_models = models_of(await sunspec_image(client, 1))
        rack_models = models_of(await sunspec_image(client, 4))  # bank1/rack3
        pcs_models = models_of(await sunspec_image(client, 20))
        meter_models = models_of(await sunspec_image(client, 21))
    battery = bank_models[802]
    assert battery.scaled("SoC") == pytest.approx(bank.soc_pct, abs=0.05)
    assert battery.scaled("CellVMax") == pytest.approx(bank.cell_v_max, abs=0.0005)
    assert battery.scaled("V") == pytest.approx(bank.voltage_v, abs=0.05)
    assert battery.fixed["Typ"] == 4  # lithium-ion
    strings = bank_models[803]
    string_currents = [strings.scaled("StrA", i) or 0.0 for i in range(len(strings.groups))]
    assert battery.scaled("A") == pytest.approx(sum(string_currents), abs=len(strings.groups))
    rack = rack_models[804]
    assert rack.fixed["Idx"] == 3
    assert rack.scaled("SoC") == pytest.approx(bank.racks[2].soc_pct, abs=0.05)
    assert 3.1 < (rack.scaled("CellVMin") or 0) <= (rack.scaled("CellVMax") or 0) < 3.5
    ac_power = pcs_models[701].scaled("W") or 0.0
    assert ac_power == pytest.approx(snapshot.pcs.power_w, abs=1000)
    assert meter_models[203].scaled("W") == pytest.approx(ac_power, rel=0.01, abs=2000)
    assert pcs_models[713].scaled("SoC") == pytest.approx(snapshot.pcs.soc_pct, abs=0.05)
    dc_ports = pcs_models[714]
    assert [port["IDStr"] for port in dc_ports.groups] == ["bank1", "bank2"]


async def test_function_codes_answer_for_the_configured_spaces(
    sim: Simulator, modbus: Connect
) -> None:
    async with modbus("site1") as client:
        beyond = await client.read_holding_registers(40000 + 500, count=2, device_id=2)
        assert beyond.exception_code == 2
        below = await client.read_holding_registers(0, count=2, device_id=2)
        assert below.exception_code == 2
        for read in (client.read_input_registers, client.read_coils, client.read_discrete_inputs):
            response = await read(40000, count=1, device_id=2)
            assert response.exception_code == 2
        unknown_unit = await client.read_holding_registers(40000, count=2, device_id=99)
        assert unknown_unit.exception_code == 11
        write = await client.write_register(40000, 1, device_id=1)
        assert write.exception_code == 1
