"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

TopicFactory = Callable[..., Awaitable[str]]
DatabaseFactory = Callable[[str], Awaitable[str]]


def unique(prefix: str) -> str:
    """A name no other test run uses: `<prefix>_<10 hex>`."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
