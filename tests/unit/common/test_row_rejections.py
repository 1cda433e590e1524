"""Only errors about a row's data are row rejections: a `TypeError` or `ValueError`
raised by our own write path is a bug, not a reason to dead-letter the stream."""

from __future__ import annotations

import pytest

from ess_common.db_errors import classify
from ess_tables.writer import is_rejection


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("'str' object cannot be interpreted as an integer"),
        ValueError("unknown table 'x'"),
        OverflowError("math range error"),  # not the binary encoder's "value out of ... range"
    ],
)
def test_our_own_bugs_are_not_database_errors(exc: BaseException) -> None:
    assert classify(exc) is None
    assert not is_rejection(exc)


def test_the_binary_encoder_refusing_a_value_is_a_row_rejection() -> None:
    found = classify(OverflowError("value out of int16 range"))
    assert found is not None
    assert found.kind == "rejected"
