"""The control topic's messages: typed, versioned, strict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from ess_common.replay import (
    ControlDecodeError,
    OffsetRange,
    ReplayRequest,
    ReplayStatus,
    SlotRange,
    decode_control,
    encode_control,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _request(**over: object) -> ReplayRequest:
    fields: dict[str, object] = {
        "cluster": "cloud",
        "table": "rack",
        "slots": SlotRange(start=T0, end=T0 + timedelta(minutes=5)),
        "reason": "sink_loss",
        "requested_by": "gapdetector",
        "devices": ("site1/bank1/rack1",),
    }
    fields.update(over)
    return ReplayRequest.model_validate(fields)


def test_requests_and_statuses_round_trip() -> None:
    request = _request()
    assert decode_control(encode_control(request)) == request
    status = ReplayStatus(
        request_id=request.id, cluster="cloud", table="rack", state="completed", rows_inserted=3
    )
    assert decode_control(encode_control(status)) == status
    wire = orjson.loads(encode_control(request))
    assert wire["v"] == 1
    assert wire["kind"] == "replay_request"
    assert wire["slots"] == {"start": "2026-11-30T12:00:00Z", "end": "2026-11-30T12:05:00Z"}


def test_a_request_names_exactly_one_kind_of_range() -> None:
    with pytest.raises(ValidationError, match="either a slot range or an offset range"):
        _request(slots=None)
    with pytest.raises(ValidationError, match="either a slot range or an offset range"):
        _request(offsets=OffsetRange(partition=0, start_offset=0, end_offset=1))


def test_ranges_must_be_ordered_zoned_whole_seconds() -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        SlotRange(start=T0, end=T0)
    with pytest.raises(ValidationError, match="time zone"):
        SlotRange(start=T0.replace(tzinfo=None), end=T0 + timedelta(seconds=1))
    with pytest.raises(ValidationError, match="whole second"):
        SlotRange(start=T0, end=T0 + timedelta(seconds=1.5))
    with pytest.raises(ValidationError, match="greater than start_offset"):
        OffsetRange(partition=0, start_offset=5, end_offset=5)
    shifted = SlotRange(start=T0.astimezone(timezone(timedelta(hours=9))), end=T0 + timedelta(1))
    assert shifted.start == T0
    assert shifted.start.tzinfo == UTC


def test_unknown_versions_kinds_and_clusters_are_refused() -> None:
    wire = orjson.loads(encode_control(_request()))
    for bad, why in (
        ({**wire, "v": 2}, "unsupported control version"),
        ({**wire, "kind": "reboot"}, "kind"),
        ({**wire, "cluster": "mars"}, "cluster"),
        ({**wire, "table": "racks"}, "table"),
        ({**wire, "surprise": 1}, "surprise"),
    ):
        with pytest.raises(ControlDecodeError, match=why):
            decode_control(orjson.dumps(bad))
    with pytest.raises(ControlDecodeError, match="not JSON"):
        decode_control(b"{")
