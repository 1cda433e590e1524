"""`essctl archive`: bad arguments are one line on stderr and exit 2, before any I/O."""

from __future__ import annotations

import pytest

from ess_ctl.__main__ import run

SPAN = ["--from", "2026-12-01", "--to", "2026-12-02"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["restore", "--cluster", "local", "--from", "2026-12-02", "--to", "2026-12-01"],
            "must be after",
        ),
        (
            ["verify", "--cluster", "all", "--from", "2026-11-01", "--to", "2026-12-15"],
            "at most 31 days",
        ),
        (["restore", "--cluster", "local", *SPAN, "--chunk-rows", "5"], "--chunk-rows"),
        (["restore", "--cluster", "local", *SPAN, "--device", "nope"], "not a device key"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["archive", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert says in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["restore", "--cluster", "all", *SPAN],  # one cluster only
        ["verify", "--cluster", "local", "--from", "yesterday", "--to", "2026-12-02"],
        ["list", "--table", "meters"],
    ],
)
def test_unparseable_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run(["archive", *argv])
    assert exc.value.code == 2
