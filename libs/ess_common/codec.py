"""Versioned JSON wire format for readings (orjson).

Wire shape, version 1::

    {"v": 1, "table": "rack", "device": "site1/bank1/rack3",
     "ts": "2026-01-01T00:00:00Z", "read_at": "2026-01-01T00:00:00.120Z",
     "quality": 0, "values": {"soc_pct": 54.2, ...}, "extras": {...}}

Decoding never guesses: anything malformed raises `DecodeError` with a short
reason code (used as a bounded metric label and a DLQ header) and a detail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from ess_common.model import TABLES, VALUES_BY_TABLE, DeviceId, Quality, Reading, Table

WIRE_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
# The top-level keys of a reading; any other key makes a payload invalid. The fast
# decoders (the sinks' rows, the cache's readings) check against this same set.
ENVELOPE_KEYS = frozenset({"v", "table", "device", "ts", "read_at", "quality", "values", "extras"})
MAX_PAYLOAD_BYTES = 256 * 1024


class DecodeError(ValueError):
    """A payload that is not a valid reading. `reason` is a bounded code."""

    REASONS = frozenset(
        {
            "too_large",
            "not_json",
            "not_object",
            "bad_version",
            "bad_table",
            "bad_device",
            "bad_field",
            "key_mismatch",
        }
    )

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in self.REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode_reading(reading: Reading) -> bytes:
    return orjson.dumps(
        {
            "v": WIRE_VERSION,
            "table": reading.table,
            "device": reading.device.key,
            "ts": reading.ts,
            "read_at": reading.read_at,
            "quality": int(reading.quality),
            "values": reading.values.model_dump(exclude_none=True),
            "extras": reading.extras,
        },
        option=orjson.OPT_UTC_Z,
    )


def load_document(payload: bytes) -> dict[str, Any]:
    """The JSON object of one Kafka value (size, syntax and shape checked), not yet validated."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("not_json", str(exc)) from None
    if type(doc) is not dict:
        raise DecodeError("not_object", f"top level is {type(doc).__name__}")
    return doc


def decode_reading(
    payload: bytes, key: bytes | None = None, expect_table: str | None = None
) -> Reading:
    """Parse one Kafka value; `key` must equal the device key, `expect_table` the table."""
    doc = load_document(payload)
    table, device = _envelope(doc, key, expect_table)
    try:
        return Reading(
            device=device,
            ts=_timestamp(doc.get("ts"), "ts"),
            read_at=_timestamp(doc.get("read_at"), "read_at"),
            quality=Quality(_int(doc.get("quality", 0), "quality")),
            values=VALUES_BY_TABLE[table].model_validate(doc.get("values", {}), strict=True),
            extras=doc.get("extras", {}),
        )
    except ValidationError as exc:
        raise DecodeError("bad_field", _first_error(exc)) from None
    except (TypeError, ValueError) as exc:
        raise DecodeError("bad_field", str(exc)) from None


def _envelope(
    doc: dict[str, Any], key: bytes | None, expect_table: str | None
) -> tuple[Table, DeviceId]:
    version = doc.get("v")
    if not _hashable(version) or version not in SUPPORTED_VERSIONS:
        raise DecodeError("bad_version", f"v={version!r}, supported {sorted(SUPPORTED_VERSIONS)}")
    table = doc.get("table")
    if not _hashable(table) or table not in TABLES:
        raise DecodeError("bad_table", f"table={table!r}")
    if expect_table is not None and table != expect_table:
        raise DecodeError("bad_table", f"a {table} reading where {expect_table} was expected")
    device_key = doc.get("device")
    if not isinstance(device_key, str):
        raise DecodeError("bad_device", "device must be a string")
    if key is not None and key != device_key.encode():
        raise DecodeError("key_mismatch", f"message key {key!r} != device {device_key!r}")
    unknown = set(doc) - ENVELOPE_KEYS
    if unknown:
        raise DecodeError("bad_field", f"unknown top-level fields {sorted(unknown)}")
    try:
        device = DeviceId.parse(device_key)
    except ValueError as exc:
        raise DecodeError("bad_device", str(exc)) from None
    if device.table != table:
        raise DecodeError("bad_device", f"device {device_key!r} is not a {table} device")
    return table, device


def _hashable(value: Any) -> bool:
    """A JSON list or object can't be a version or a table (and can't be looked up)."""
    return not isinstance(value, list | dict)


def _timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name}={value!r} has no time zone")
    return parsed


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 0xFFFF:
        raise ValueError(f"{name}={value!r} is not a flag set")
    return value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "reading"
    return f"{where}: {err['msg']}"
