"""`python -m ess_simulator`: run serves until SIGTERM and exits 0 with JSON
logs; inventory prints the YAML inventory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from pathlib import Path

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def wait_until_listening(port: int, deadline_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > end:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


async def test_run_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("sites:\n  - {id: lab, banks: {bank1: 2}}\n")
    modbus_port, control_port = free_ports(2)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ess_simulator", "run", "--config", str(fleet),
        "--base-port", str(modbus_port), "--control-port", str(control_port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_until_listening(control_port)
        client = AsyncModbusTcpClient("127.0.0.1", port=modbus_port, timeout=2, retries=0)
        await client.connect()
        try:
            marker = await client.read_holding_registers(40000, count=2, device_id=1)
        finally:
            client.close()
        assert marker.registers == [0x5375, 0x6E53]
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    messages = [line["msg"] for line in lines]
    assert "simulator serving" in messages
    assert "simulator stopped" in messages


async def test_inventory_command_prints_yaml_with_ports() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ess_simulator", "inventory", "--base-port", "16100",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    inventory = yaml.safe_load(stdout)
    assert [site["port"] for site in inventory["sites"]] == [16100, 16101, 16102, 16103]
    assert inventory["sites"][3]["protocol"] == "vendor"


async def test_bad_fleet_file_exits_with_a_message(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("sites: []\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ess_simulator", "run", "--config", str(fleet),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert "fleet file" in stderr.decode()
