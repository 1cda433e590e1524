"""`python -m ess_gapdetector` as a real process: bad configuration and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from ess_common.settings import CommonSettings
from helpers.common import DatabaseFactory, assert_bad_config_exits_78, unique
from helpers.gap import pipeline


def test_bad_configuration_is_one_clear_line_and_exit_78() -> None:
    assert_bad_config_exits_78(
        "ess_gapdetector", {"ESS_GAP_PERIODS": '["week"]', "ESS_GAP_SETTLE_S": "-1"}
    )


async def test_gapdetector_process_serves_metrics_and_stops_on_sigterm(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    async with pipeline(settings, topic_prefix, make_database) as clusters:
        env = {
            **os.environ,
            "ESS_TOPIC_PREFIX": topic_prefix,
            "ESS_DB_LOCAL_DSN": clusters.local,
            "ESS_DB_CLOUD_DSN": clusters.cloud,
            "ESS_GAP_GROUP_ID": unique("gapdetector"),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ess_gapdetector", env=env, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        try:
            async with asyncio.timeout(60):
                while b'"msg":"gapdetector started"' not in (line := await proc.stderr.readline()):
                    assert line, "gap detector exited during start"
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                rest = await proc.stderr.read()
                assert await proc.wait() == 0, rest.decode()
            assert b'"msg":"gapdetector stopped"' in rest
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
