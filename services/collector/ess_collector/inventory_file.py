"""Reading the inventory file: YAML kept as nodes so every error names its line.

The file is composed into a node tree (each node knows its start line), built
into plain data, validated with pydantic, then checked for rules that span the
file. Any problem becomes one `InventoryError`: "<file>:<line>: <where>: <reason>".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ess_collector.errors import InventoryError
from ess_collector.inventory import Inventory, cross_check

_MAX_ERRORS_SHOWN = 5
Location = Sequence[str | int]


def load_inventory(path: Path) -> Inventory:
    """Parse and validate an inventory file; InventoryError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read the inventory: {exc.strerror}") from None
    return parse_inventory(text, str(path))


def parse_inventory(text: str, source: str) -> Inventory:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        context = ""
        if exc.context and exc.context_mark is not None:
            context = f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise InventoryError(f"{source}:{line}: not valid YAML: {exc.problem}{context}") from None
    if root is None:
        raise InventoryError(f"{source}:1: the inventory is empty")
    data = yaml.SafeLoader(text).get_single_data()  # same text: same tree as `root`
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        problems = [(err["loc"], _reason(err)) for err in exc.errors()]
        raise InventoryError(_message(source, root, problems)) from None
    problems = cross_check(inventory)
    if problems:
        raise InventoryError(_message(source, root, problems))
    return inventory


def _reason(err: Any) -> str:
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def _message(source: str, root: yaml.Node, problems: Sequence[tuple[Location, str]]) -> str:
    lines = [
        f"{source}:{line_of(root, loc)}: {_dotted(loc)}: {reason}"
        for loc, reason in problems[:_MAX_ERRORS_SHOWN]
    ]
    if len(problems) > _MAX_ERRORS_SHOWN:
        lines.append(f"... and {len(problems) - _MAX_ERRORS_SHOWN} more")
    return "\n".join(lines)


def _dotted(loc: Location) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "inventory"


def line_of(root: yaml.Node, loc: Location) -> int:
    """1-based line of the deepest node a pydantic location reaches."""
    node = root
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        items: list[yaml.Node] = node.value
        return items[part] if 0 <= part < len(items) else None
    return None
