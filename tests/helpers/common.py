"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ess_common.topics import all_topics

TopicFactory = Callable[..., Awaitable[str]]
DatabaseFactory = Callable[[str], Awaitable[str]]


def unique(prefix: str) -> str:
    """A name no other test run uses: `<prefix>_<10 hex>`."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def assert_bad_config_exits_78(module: str, bad: dict[str, str]) -> None:
    """`python -m module` with `bad` settings: exit 78 and one stderr line naming each."""
    result = subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **bad},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in bad:
        assert name in lines[0], (name, lines[0])


@asynccontextmanager
async def pipeline_topics(bootstrap: str, prefix: str, partitions: int = 3) -> AsyncIterator[None]:
    """The pipeline's topics under `prefix` for one test; deleted afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topics = all_topics(prefix)
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
        yield
    finally:
        await admin.delete_topics(topics)
        await admin.close()
