"""The sink's fast decoder gives exactly the rows and rejection reasons of the codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from ess_common.codec import DecodeError, decode_reading, encode_reading
from ess_common.model import TABLES, DeviceId, PcsValues, Quality, RackValues, Reading, Table
from ess_common.synthetic import readings, seed_fleet
from ess_tables.rows import columns, to_row
from ess_tables.wire_rows import RowDecoder

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _rack(**over: object) -> Reading:
    base: dict[str, object] = {
        "device": DeviceId(table="rack", site="site2", bank=2, rack=7),
        "ts": T0,
        "read_at": T0 + timedelta(milliseconds=87),
        "quality": Quality.NOT_IMPLEMENTED,
        "values": RackValues(soc_pct=55.5, cell_v_max=3.341, alarm_bits=5),
        "extras": {"vendor_fan_rpm": 1200, "fw": "1.2.3", "ok": True, "gone": None},
    }
    base.update(over)
    return Reading.model_validate(base)


def _wire(**over: object) -> bytes:
    doc = orjson.loads(encode_reading(_rack()))
    for name, value in over.items():
        if value is ...:
            doc.pop(name)
        else:
            doc[name] = value
    return orjson.dumps(doc)


def _reference(payload: bytes, key: bytes | None, table: Table) -> tuple[Any, ...] | str:
    try:
        return to_row(decode_reading(payload, key, expect_table=table))
    except DecodeError as exc:
        return exc.reason


def _fast(payload: bytes, key: bytes | None, table: Table) -> tuple[Any, ...] | str:
    try:
        return RowDecoder(table).decode(payload, key)
    except DecodeError as exc:
        return exc.reason if exc.detail else "no detail"


def test_every_table_gives_the_codecs_rows_in_column_order() -> None:
    fleet = list(readings(seed_fleet(), T0, seconds=2))
    assert {r.table for r in fleet} == set(TABLES)
    decoders = {t: RowDecoder(t) for t in TABLES}
    for reading in fleet:
        wire, key = encode_reading(reading), reading.device.key.encode()
        row = decoders[reading.table].decode(wire, key)
        assert row == to_row(reading)
        assert len(row) == len(columns(reading.table))
        assert [type(v) for v in row] == [type(v) for v in to_row(reading)]


@pytest.mark.parametrize(
    "payload",
    [
        encode_reading(_rack()),
        encode_reading(_rack(extras={})),
        encode_reading(_rack(quality=Quality(0xFFFF))),
        _wire(ts="2026-03-01T21:00:00+09:00", read_at="2026-03-01T21:00:00.5+09:00"),
        _wire(values={"soc_pct": 55, "modules": 16}),  # an integer where a float is expected
        _wire(values={"soc_pct": None}),
        _wire(values=...),
        _wire(extras=...),
        _wire(quality=...),
        _wire(v=1.0),  # equal to 1, as the codec sees it
        _wire(values={"alarm_bits": 2**63}),  # valid JSON and model; the database refuses it
        b"",
        b"{not json",
        b"[1, 2]",
        b"x" * 300_000,
        _wire(v=2),
        _wire(v=...),
        _wire(table="battery"),
        _wire(table="pcs"),
        _wire(device=42),
        _wire(device="site1/pcs1"),
        _wire(device="site1/bank1/rack99999"),
        _wire(ts="yesterday"),
        _wire(ts=1772366400),
        _wire(ts="2026-03-01T12:00:00"),
        _wire(ts="2026-03-01T12:00:00.5Z"),
        _wire(read_at="2026-03-01T12:00:00"),
        _wire(values={"soc_pct": "55"}),
        _wire(values={"soc_pct": True}),
        _wire(values={"bogus": 1.0}),
        _wire(values={"alarm_bits": 1.5}),
        _wire(values={"alarm_bits": 1.0}),
        _wire(values={"alarm_bits": False}),
        _wire(values=[1.0]),
        _wire(values=None),
        _wire(quality=-1),
        _wire(quality=0x10000),
        _wire(quality=True),
        _wire(quality=1.0),
        _wire(extra_top=1),
        _wire(extras={"nested": {"a": 1}}),
        _wire(extras={"list": [1]}),
        _wire(extras=[1]),
        _wire(extras=None),
    ],
)
def test_same_row_or_same_reason_as_the_codec(payload: bytes) -> None:
    assert _fast(payload, None, "rack") == _reference(payload, None, "rack")


def test_the_message_key_must_match_the_device() -> None:
    wire = encode_reading(_rack())
    assert _fast(wire, b"site2/bank2/rack8", "rack") == "key_mismatch"
    assert _fast(wire, b"site2/bank2/rack7", "rack") == _reference(wire, None, "rack")


def test_a_reading_of_another_table_is_refused_on_that_topic() -> None:
    pcs = Reading(
        device=DeviceId(table="pcs", site="s", unit=1), ts=T0, read_at=T0, values=PcsValues()
    )
    assert _fast(encode_reading(pcs), None, "rack") == "bad_table"


def test_an_unhashable_version_is_a_bad_version_not_a_crash() -> None:
    assert _fast(_wire(v=[1]), None, "rack") == "bad_version"


def test_timestamps_come_back_in_utc() -> None:
    row = RowDecoder("rack").decode(_wire(ts="2026-03-01T21:00:00+09:00"), None)
    ts = row[columns("rack").index("ts")]
    assert ts == T0
    assert ts.tzinfo == UTC
    assert ts.utcoffset() == timedelta(0)


def test_caches_do_not_let_a_bad_device_or_time_through_later() -> None:
    decoder = RowDecoder("rack")
    good = encode_reading(_rack())
    decoder.decode(good, None)
    with pytest.raises(DecodeError):
        decoder.decode(_wire(device="site2/bank2/pcs7"), None)
    with pytest.raises(DecodeError):
        decoder.decode(_wire(ts="2026-03-01T12:00:00.5Z"), None)
    assert decoder.decode(good, None) == to_row(_rack())
