"""Kafka values straight to table rows: the sink's fast path through the wire format.

`ess_common.codec.decode_reading` builds pydantic models, about 40 us a
message: that alone would cap a sink near 25,000 rows/s on one core. The sink
needs only the row tuple, so `RowDecoder` applies the same rules by hand
(strict numbers, integers that are integers, no unknown fields, zoned
timestamps, whole-second slots, key = device, table = topic) and caches what
repeats (device identities, timestamp strings). It raises the same
`DecodeError` reasons; `tests/unit/sink/test_wire_rows.py` runs both decoders on
the same valid and malformed payloads and requires identical rows and reasons.
"""

from __future__ import annotations

import types
from datetime import UTC, datetime
from typing import Any, get_args

import orjson

from ess_common.codec import ENVELOPE_KEYS, SUPPORTED_VERSIONS, DecodeError, load_document
from ess_common.model import TABLES, VALUES_BY_TABLE, DeviceId, Table, measurement_fields

_EXTRA_TYPES = (int, float, str, bool, types.NoneType)
_CACHE_LIMIT = 65_536
_NOTHING: dict[str, Any] = {}  # stands for an absent "values" / "extras"; never mutated

Row = tuple[Any, ...]


def _integer_fields(table: Table) -> frozenset[str]:
    fields = VALUES_BY_TABLE[table].model_fields
    return frozenset(name for name, f in fields.items() if int in get_args(f.annotation))


class RowDecoder:
    """Decodes one table's messages into rows in `ess_tables.rows.columns(table)` order."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._fields = measurement_fields(table)
        self._known = frozenset(self._fields)
        self._integers = _integer_fields(table)
        # device key -> (identity columns, the key as bytes for the message-key check)
        self._identities: dict[str, tuple[tuple[Any, ...], bytes]] = {}
        self._times: dict[str, datetime] = {}
        self._shapes: dict[tuple[type, ...], tuple[int, ...]] = {}

    def decode(self, payload: bytes, key: bytes | None) -> Row:
        """One Kafka value (and key) to one row; `DecodeError` if it is not a valid reading.

        Written for speed (it runs for every message): the common case is a few
        dictionary lookups; anything unusual takes the slow path, which checks
        in the codec's order and raises the codec's reason.
        """
        doc = load_document(payload)
        device = doc.get("device")
        known = self._identities.get(device) if type(device) is str else None
        version = doc.get("v")
        if (
            known is None
            or type(version) is not int
            or version not in SUPPORTED_VERSIONS
            or doc.get("table") != self.table
            or (key is not None and key != known[1])
            or not doc.keys() <= ENVELOPE_KEYS
        ):
            identity = self._identity(doc, key)
        else:
            identity = known[0]
        times = self._times
        text = doc.get("ts")
        ts = times.get(text) if type(text) is str else None
        if ts is None:
            ts = self._time(text, "ts")
        if ts.microsecond:
            raise DecodeError("bad_field", "ts is a one-second slot and must have no fraction")
        text = doc.get("read_at")
        read_at = times.get(text) if type(text) is str else None
        if read_at is None:
            read_at = self._time(text, "read_at")
        quality = doc.get("quality", 0)
        if type(quality) is not int or quality < 0 or quality > 0xFFFF:
            raise DecodeError("bad_field", f"quality={quality!r} is not a flag set")
        values = self._values(doc.get("values", _NOTHING))
        extras = doc.get("extras", _NOTHING)
        return (
            *identity,
            ts,
            read_at,
            quality,
            *values,
            None if extras is _NOTHING else _extras_json(extras),
        )

    def _identity(self, doc: dict[str, Any], key: bytes | None) -> tuple[Any, ...]:
        version = doc.get("v")
        if not _is_supported_version(version):
            raise DecodeError(
                "bad_version", f"v={version!r}, supported {sorted(SUPPORTED_VERSIONS)}"
            )
        table = doc.get("table")
        if table not in TABLES:
            raise DecodeError("bad_table", f"table={table!r}")
        if table != self.table:
            raise DecodeError("bad_table", f"a {table} reading where {self.table} was expected")
        device_key = doc.get("device")
        if not isinstance(device_key, str):
            raise DecodeError("bad_device", "device must be a string")
        if key is not None and key != device_key.encode():
            raise DecodeError("key_mismatch", f"message key {key!r} != device {device_key!r}")
        if not doc.keys() <= ENVELOPE_KEYS:
            unknown = sorted(set(doc) - ENVELOPE_KEYS)
            raise DecodeError("bad_field", f"unknown top-level fields {unknown}")
        known = self._identities.get(device_key)
        return known[0] if known is not None else self._parse_device(device_key)

    def _parse_device(self, device_key: str) -> tuple[Any, ...]:
        try:
            device = DeviceId.parse(device_key)
        except ValueError as exc:
            raise DecodeError("bad_device", str(exc)) from None
        if device.table != self.table:
            raise DecodeError("bad_device", f"device {device_key!r} is not a {self.table} device")
        if device.table == "bank":
            ids: tuple[int | None, ...] = (device.bank,)
        elif device.table == "rack":
            ids = (device.bank, device.rack)
        else:
            ids = (device.unit,)
        identity = (device.key, device.site, *ids)
        if len(self._identities) >= _CACHE_LIMIT:
            self._identities.clear()
        self._identities[device_key] = (identity, device_key.encode())
        return identity

    def _time(self, value: Any, name: str) -> datetime:
        if not isinstance(value, str):
            raise DecodeError("bad_field", f"{name} must be an ISO-8601 string")
        parsed = self._times.get(value)
        if parsed is not None:
            return parsed
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise DecodeError("bad_field", f"{name}={value!r} is not ISO-8601") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise DecodeError("bad_field", f"{name}={value!r} has no time zone")
        parsed = parsed.astimezone(UTC)
        if len(self._times) >= _CACHE_LIMIT:
            self._times.clear()
        self._times[value] = parsed
        return parsed

    def _values(self, values: Any) -> list[Any]:
        if not isinstance(values, dict):
            raise DecodeError("bad_field", "values must be an object")
        if not values.keys() <= self._known:
            unknown = sorted(set(values) - self._known)
            raise DecodeError("bad_field", f"values: unknown fields {unknown}")
        out: list[Any] = list(map(values.get, self._fields))
        # The types of a device's values rarely change: check each new shape once.
        shape = tuple(map(type, out))
        to_float = self._shapes.get(shape)
        if to_float is None:
            to_float = self._learn_shape(shape, out)
        for i in to_float:  # integers sent for float fields, as pydantic converts them
            out[i] = float(out[i])
        return out

    def _learn_shape(self, shape: tuple[type, ...], out: list[Any]) -> tuple[int, ...]:
        """Check one shape of values (raises on a bad type); which positions become float."""
        to_float: list[int] = []
        for i, (name, kind) in enumerate(zip(self._fields, shape, strict=True)):
            if kind is types.NoneType:
                continue
            if name in self._integers:
                if kind is not int:
                    raise DecodeError("bad_field", f"values.{name}: {out[i]!r} is not an integer")
            elif kind is int:
                to_float.append(i)
            elif kind is not float:
                raise DecodeError("bad_field", f"values.{name}: {out[i]!r} is not a number")
        if len(self._shapes) >= _CACHE_LIMIT:
            self._shapes.clear()
        learned = self._shapes[shape] = tuple(to_float)
        return learned


def _is_supported_version(version: Any) -> bool:
    try:
        return version in SUPPORTED_VERSIONS
    except TypeError:  # unhashable (a list or an object): certainly not a version
        return False


def _extras_json(extras: Any) -> str | None:
    if not isinstance(extras, dict):
        raise DecodeError("bad_field", "extras must be an object")
    for name, value in extras.items():
        if not isinstance(value, _EXTRA_TYPES):
            raise DecodeError("bad_field", f"extras.{name}: must be a number, string, bool or null")
    return orjson.dumps(extras).decode() if extras else None
