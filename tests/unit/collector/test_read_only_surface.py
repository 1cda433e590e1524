"""The collector is read-only: only function codes 1-4 exist in its code.

The client wrapper offers the four reads and nothing else; no source calls a
Modbus write (single/multiple coil or register, mask write, read/write), none
imports a Modbus library that has them, and the function-code enum holds
exactly 1-4.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ess_collector
from ess_collector.modbus_client import ReadOnlyModbusClient
from ess_collector.modbus_frames import ReadFunction

PACKAGE = Path(ess_collector.__file__).parent
SOURCES = sorted(PACKAGE.glob("*.py"))
WRITE_CODES = frozenset({5, 6, 15, 16, 22, 23})
MODBUS_WRITE_NAME = re.compile(
    r"^(async_)?(write_(single_|multiple_)?(coil|register)s?|mask_write_register|readwrite_registers)$",
    re.IGNORECASE,
)


def _trees() -> list[tuple[str, ast.Module]]:
    return [(p.name, ast.parse(p.read_text())) for p in SOURCES]


def test_only_the_four_read_function_codes_exist() -> None:
    assert {int(f) for f in ReadFunction} == {1, 2, 3, 4}
    enum_class = next(
        node
        for _, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "ReadFunction"
    )
    literals = {
        node.value.value
        for node in enum_class.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    assert literals == {1, 2, 3, 4}


def test_the_client_offers_reads_only() -> None:
    public = {n for n in dir(ReadOnlyModbusClient) if not n.startswith("_")}
    assert {n for n in public if n.startswith("read")} == {
        "read",
        "read_coils",
        "read_discrete_inputs",
        "read_holding_registers",
        "read_input_registers",
    }
    assert not any("write" in n for n in public)


def test_no_source_calls_a_modbus_write_or_builds_a_write_code() -> None:
    assert len(SOURCES) > 10
    offences: list[str] = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute | ast.Name):
                ident = node.attr if isinstance(node, ast.Attribute) else node.id
                if MODBUS_WRITE_NAME.match(ident):
                    offences.append(f"{name}:{node.lineno}: {ident}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ReadFunction":
                codes = {a.value for a in node.args if isinstance(a, ast.Constant)}
                if codes & WRITE_CODES:
                    offences.append(f"{name}:{node.lineno}: ReadFunction{tuple(codes)}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                offences += [f"{name}: imports {m}" for m in modules if m.startswith("pymodbus")]
    assert offences == []


def test_the_scan_would_catch_a_write() -> None:
    assert MODBUS_WRITE_NAME.match("write_register")
    assert MODBUS_WRITE_NAME.match("write_coils")
    assert MODBUS_WRITE_NAME.match("async_write_registers")
    assert not MODBUS_WRITE_NAME.match("write_text")
