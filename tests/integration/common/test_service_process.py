"""A service as a real process: bad configuration and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from helpers.common import DatabaseFactory, assert_bad_config_exits_78, unique


def test_bad_configuration_is_one_clear_line_and_exit_78() -> None:
    assert_bad_config_exits_78(
        "ess_sink", {"ESS_SINK_CLUSTER": "mars", "ESS_SINK_BATCH_MAX_ROWS": "0"}
    )


async def test_sink_process_stops_cleanly_on_sigterm(make_database: DatabaseFactory) -> None:
    dsn = await make_database("local")
    env = {
        **os.environ,
        "ESS_SINK_CLUSTER": "local",
        "ESS_DB_LOCAL_DSN": dsn,
        "ESS_SINK_GROUP_ID": unique("g"),
        "ESS_TOPIC_PREFIX": unique("p").replace("_", "-"),
        "ESS_SINK_TABLES": '["rack"]',
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ess_sink", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(60):
            while b'"msg":"sink-local started"' not in (line := await proc.stderr.readline()):
                assert line, "sink exited during start"
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest = await proc.stderr.read()
            assert await proc.wait() == 0
        assert b'"msg":"sink-local stopped"' in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
