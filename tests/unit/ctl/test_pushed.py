"""A Pushgateway that does not answer costs one warning, never the command's result."""

from __future__ import annotations

from ess_ctl.pushed import push_redrive
from helpers.disposable import free_port


def test_an_unreachable_gateway_is_reported_not_raised() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    problem = push_redrive(url, "ess", "local", {"inserted": 3})
    assert problem is not None
    assert problem.startswith(f"counts not pushed to {url}: ")
