"""`essctl status` refuses bad targets and intervals with one line and exit 2, reading nothing."""

from __future__ import annotations

import pytest

from ess_ctl.__main__ import run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "sink"], "expected NAME=http://host:port/metrics"),
        (["--target", "sink=127.0.0.1:18101"], "expected NAME=http://host:port/metrics"),
        (["--interval", "0"], "--interval must be above 0"),
    ],
)
def test_bad_arguments_are_refused(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["status", "--once", *args]) == 2
    assert message in capsys.readouterr().err
