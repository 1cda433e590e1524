"""The standard data model and its wire format: round trips and clear rejections."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from ess_common.codec import DecodeError, decode_reading, encode_reading
from ess_common.model import (
    TABLES,
    DeviceId,
    PcsValues,
    Quality,
    RackValues,
    Reading,
    measurement_fields,
)
from ess_common.synthetic import readings, seed_fleet

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def rack_reading(**over: object) -> Reading:
    base: dict[str, object] = {
        "device": DeviceId(table="rack", site="site2", bank=2, rack=7),
        "ts": T0,
        "read_at": T0 + timedelta(milliseconds=87),
        "quality": Quality.NOT_IMPLEMENTED,
        "values": RackValues(soc_pct=55.5, cell_v_max=3.341, cell_v_min=None, alarm_bits=5),
        "extras": {"vendor_fan_rpm": 1200, "fw": "1.2.3"},
    }
    base.update(over)
    return Reading.model_validate(base)


def test_every_table_round_trips_through_the_wire_format() -> None:
    fleet_readings = list(readings(seed_fleet(), T0, seconds=2))
    assert {r.table for r in fleet_readings} == set(TABLES)
    for reading in fleet_readings:
        wire = encode_reading(reading)
        assert decode_reading(wire, reading.device.key.encode()) == reading


def test_nulls_flags_and_extras_survive_the_round_trip() -> None:
    reading = rack_reading()
    back = decode_reading(encode_reading(reading))
    assert back.values == reading.values
    assert isinstance(back.values, RackValues)
    assert back.values.cell_v_min is None
    assert back.quality == Quality.NOT_IMPLEMENTED
    assert back.extras == {"vendor_fan_rpm": 1200, "fw": "1.2.3"}
    assert back.ts.tzinfo is not None
    assert back.ts.utcoffset() == timedelta(0)


def test_wire_format_is_versioned_json_with_utc_z() -> None:
    doc = orjson.loads(encode_reading(rack_reading()))
    assert doc["v"] == 1
    assert doc["device"] == "site2/bank2/rack7"
    assert doc["ts"] == "2026-03-01T12:00:00Z"
    assert "cell_v_min" not in doc["values"]  # nulls are left out, not sent as numbers


def test_non_utc_input_is_normalised_to_utc() -> None:
    kst = timezone(timedelta(hours=9))
    reading = rack_reading(ts=datetime(2026, 3, 1, 21, 0, 0, tzinfo=kst))
    assert reading.ts == T0
    assert reading.ts.tzinfo == UTC


@pytest.mark.parametrize(
    ("key", "table", "fields"),
    [
        ("site1/bank1", "bank", {"bank": 1}),
        ("site2/bank2/rack9", "rack", {"bank": 2, "rack": 9}),
        ("site3/pcs1", "pcs", {"unit": 1}),
        ("site-4_x/etc2", "etc", {"unit": 2}),
    ],
)
def test_device_keys_parse_back_to_their_identity(
    key: str, table: str, fields: dict[str, int]
) -> None:
    device = DeviceId.parse(key)
    assert device.table == table
    assert device.key == key
    for name, value in fields.items():
        assert getattr(device, name) == value


@pytest.mark.parametrize(
    "key",
    [
        "site1",
        "site1/rack3",
        "site1/bank0",
        "Site1/bank1",
        "site1/bank1/pcs1",
        "/bank1",
        "site1/bank1/rack1/rack2",
        "site1/bankx",
    ],
)
def test_malformed_device_keys_are_rejected(key: str) -> None:
    with pytest.raises(ValueError, match=r"key|site|bank|device"):
        DeviceId.parse(key)


def test_a_device_must_have_exactly_its_tables_identity() -> None:
    with pytest.raises(ValidationError, match="requires 'rack'"):
        DeviceId(table="rack", site="s", bank=1)
    with pytest.raises(ValidationError, match="must not have 'bank'"):
        DeviceId(table="pcs", site="s", unit=1, bank=1)


def test_reading_rules() -> None:
    with pytest.raises(ValidationError, match="no fraction"):
        rack_reading(ts=T0 + timedelta(milliseconds=5))
    with pytest.raises(ValidationError, match="time zone"):
        rack_reading(ts=datetime(2026, 3, 1, 12, 0, 0))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValidationError, match="values are for table 'pcs'"):
        rack_reading(values=PcsValues())


def _wire(**over: object) -> bytes:
    doc = orjson.loads(encode_reading(rack_reading()))
    for name, value in over.items():
        if value is ...:
            doc.pop(name)
        else:
            doc[name] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not_json"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b"x" * 300_000, "too_large"),
        (_wire(v=2), "bad_version"),
        (_wire(v=...), "bad_version"),
        (_wire(v=[1]), "bad_version"),  # unhashable: must not escape as a TypeError
        (_wire(v={"a": 1}), "bad_version"),
        (_wire(table=["rack"]), "bad_table"),
        (_wire(table="battery"), "bad_table"),
        (_wire(device=42), "bad_device"),
        (_wire(device="site1/pcs1"), "bad_device"),  # a pcs key on a rack reading
        (_wire(ts="yesterday"), "bad_field"),
        (_wire(ts="2026-03-01T12:00:00"), "bad_field"),  # no zone
        (_wire(ts="2026-03-01T12:00:00.5Z"), "bad_field"),  # not a slot
        (_wire(values={"soc_pct": "55"}), "bad_field"),  # strings are not numbers
        (_wire(values={"soc_pct": True}), "bad_field"),
        (_wire(values={"bogus": 1.0}), "bad_field"),
        (_wire(values={"alarm_bits": 1.5}), "bad_field"),
        (_wire(quality=-1), "bad_field"),
        (_wire(extra_top=1), "bad_field"),
        (_wire(extras={"nested": {"a": 1}}), "bad_field"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_reading(payload)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_message_key_must_match_the_device() -> None:
    wire = encode_reading(rack_reading())
    with pytest.raises(DecodeError) as caught:
        decode_reading(wire, key=b"site2/bank2/rack8")
    assert caught.value.reason == "key_mismatch"


def test_nan_is_not_valid_json_and_cannot_sneak_in() -> None:
    wire = encode_reading(rack_reading()).replace(b"55.5", b"NaN")
    with pytest.raises(DecodeError):
        decode_reading(wire)
    assert math.isnan(float("nan"))  # the model never carries NaN: sentinels become None


def test_measurement_fields_are_stable_and_distinct() -> None:
    for table in TABLES:
        fields = measurement_fields(table)
        assert len(fields) == len(set(fields)) > 5
