"""`python -m ess_archive` as a real process: bad configuration, /healthz and SIGTERM."""

from __future__ import annotations

import asyncio
import sys
import urllib.request

import orjson

from ess_common.settings import CommonSettings
from helpers.archive import archive_env, archive_settings, private_prefix
from helpers.common import assert_bad_config_exits_78, unique


def test_bad_configuration_is_one_clear_line_and_exit_78() -> None:
    assert_bad_config_exits_78(
        "ess_archive", {"ESS_ARCHIVE_FLUSH_ROWS": "0", "ESS_ARCHIVE_TABLES": '["week"]'}
    )


async def test_archive_process_serves_health_and_stops_on_sigterm(
    settings: CommonSettings, telemetry_prefix: str
) -> None:
    async with private_prefix() as store:
        config = archive_settings(settings, store, telemetry_prefix, unique("g-archive"))
        env = archive_env(config, ESS_LOG_FORMAT="json")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ess_archive", env=env, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        try:
            async with asyncio.timeout(60):
                while b'"msg":"archive started"' not in (line := await proc.stderr.readline()):
                    assert line, "archive exited during start"
            port = orjson.loads(line)["http_port"]
            health = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
            )
            assert orjson.loads(health)["object_store"] == "up"
            secret = store.archive_s3_secret_access_key
            assert secret is not None
            assert secret.get_secret_value().encode() not in health
            proc.send_signal(15)
            async with asyncio.timeout(30):
                rest = await proc.stderr.read()
                assert await proc.wait() == 0, rest.decode()
            assert b'"msg":"archive stopped"' in rest
            assert secret.get_secret_value().encode() not in rest  # never logged
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
