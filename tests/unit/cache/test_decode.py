"""The cache's fast decoder accepts exactly what the strict codec accepts, with the same values."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ess_cache.decode import ReadingDecoder
from ess_cache_layout.measures import MEASURES
from ess_common.codec import DecodeError, decode_reading, encode_reading
from ess_common.synthetic import readings, seed_fleet

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
GOOD = {
    "v": 1,
    "table": "rack",
    "device": "site2/bank2/rack7",
    "ts": "2026-03-01T12:00:00Z",
    "read_at": "2026-03-01T12:00:00.087Z",
    "quality": 1,
    "values": {"soc_pct": 55.5, "cell_v_max": 3.341, "alarm_bits": 5},
    "extras": {"vendor_fan_rpm": 1200},
}


def _variant(**changes: object) -> bytes:
    doc = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in doc.items() if v is not ...})


def test_synthetic_readings_decode_on_the_fast_path_to_the_strict_values() -> None:
    decoder = ReadingDecoder()
    for reading in readings(seed_fleet(), T0, seconds=2):
        payload = encode_reading(reading)
        got = decoder.decode(payload, reading.device.key.encode(), reading.table)
        assert got.device == reading.device
        assert got.slot == int(reading.ts.timestamp())
        values = reading.values.model_dump()
        assert got.measures == tuple(values[m.column] for m in MEASURES[reading.table])
    assert decoder.strict == 0


@pytest.mark.parametrize(
    "payload",
    [
        _variant(),
        _variant(values={"soc_pct": 55, "cell_v_max": None}),  # an int for a float, a null
        _variant(ts="2026-03-01T12:00:00+00:00"),  # another spelling of UTC: strict path
        _variant(ts="2026-03-01T21:00:00+09:00"),
        _variant(quality=..., extras=...),
        _variant(extras={"a": True, "b": None, "c": "x", "d": 1.5}),
    ],
)
def test_valid_messages_decode_as_the_strict_codec_decodes_them(payload: bytes) -> None:
    strict = decode_reading(payload, b"site2/bank2/rack7", "rack")
    got = ReadingDecoder().decode(payload, b"site2/bank2/rack7", "rack")
    assert got.slot == int(strict.ts.timestamp())
    values = strict.values.model_dump()
    assert got.measures == tuple(values[m.column] for m in MEASURES["rack"])


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        _variant(v=2),
        _variant(table="bank"),
        _variant(device="site2/bank2"),
        _variant(device="Site2/bank2/rack7"),
        _variant(ts="2026-03-01T12:00:00.500Z"),
        _variant(ts="2026-03-01T12:00:00"),
        _variant(read_at="yesterday"),
        _variant(quality=True),
        _variant(quality=-1),
        _variant(values={"soc_pct": "55"}),
        _variant(values={"soc_pct": True}),
        _variant(values={"modules": 3.0}),
        _variant(values={"unknown": 1}),
        _variant(values={"unknown": None}),
        _variant(values=[]),
        _variant(extras={"nested": [1]}),
        _variant(extras=None),
        _variant(surprise=1),
    ],
)
def test_invalid_messages_are_refused_as_the_strict_codec_refuses_them(payload: bytes) -> None:
    with pytest.raises(DecodeError) as strict:
        decode_reading(payload, b"site2/bank2/rack7", "rack")
    with pytest.raises(DecodeError) as fast:
        ReadingDecoder().decode(payload, b"site2/bank2/rack7", "rack")
    assert fast.value.reason == strict.value.reason


def test_a_key_that_is_not_the_device_is_refused() -> None:
    with pytest.raises(DecodeError, match="key_mismatch"):
        ReadingDecoder().decode(_variant(), b"site2/bank2/rack6", "rack")
