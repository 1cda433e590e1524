"""Decoding telemetry messages for the cache, fast on the common path.

`ess_common.codec.decode_reading` validates with pydantic (about 40 us a
message). The cache needs only a few fields, so it first tries a direct check
of the payload; anything it does not positively recognise goes to the strict
decoder, which accepts or rejects it. The fast path accepts only what the
strict decoder accepts (a unit test holds them together), so the cache and
the sinks agree on which messages count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from types import NoneType
from typing import Any

import orjson

from ess_cache_layout.measures import MEASURES
from ess_common.codec import ENVELOPE_KEYS, SUPPORTED_VERSIONS, decode_reading, encode_reading
from ess_common.model import VALUES_BY_TABLE, DeviceId, Table

_SLOT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_SCALARS = (str, int, float, bool, NoneType)


@dataclass(frozen=True, slots=True)
class CacheReading:
    device: DeviceId
    key: str  # the device key (`device.key`, kept: it is used per reading)
    slot: int  # epoch seconds
    measures: tuple[float | None, ...]  # aligned with MEASURES[device.table]
    payload: bytes  # the wire JSON, kept as the device's latest reading


def _field_types(table: Table) -> tuple[frozenset[str], frozenset[str]]:
    floats: set[str] = set()
    ints: set[str] = set()
    for name, info in VALUES_BY_TABLE[table].model_fields.items():
        (ints if info.annotation == (int | None) else floats).add(name)
    return frozenset(floats), frozenset(ints)


_FIELD_TYPES = {table: _field_types(table) for table in MEASURES}
_COLUMNS = {table: tuple(m.column for m in ms) for table, ms in MEASURES.items()}


class ReadingDecoder:
    """Decodes one table's messages; remembers parsed device keys."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceId] = {}
        self.fast = 0
        self.strict = 0

    def decode(self, payload: bytes, key: bytes | None, table: Table) -> CacheReading:
        """A reading, or `DecodeError` exactly when the strict codec raises one."""
        fast = self._fast(payload, key, table)
        if fast is not None:
            self.fast += 1
            return fast
        self.strict += 1
        reading = decode_reading(payload, key, expect_table=table)
        values = reading.values.model_dump()
        return CacheReading(
            reading.device,
            reading.device.key,
            int(reading.ts.timestamp()),
            _measures(values, table),
            encode_reading(reading),
        )

    def _fast(self, payload: bytes, key: bytes | None, table: Table) -> CacheReading | None:
        if len(payload) > 64 * 1024:
            return None
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if (
            type(doc) is not dict
            or not ENVELOPE_KEYS.issuperset(doc)
            or doc.get("v") not in SUPPORTED_VERSIONS
            or doc.get("table") != table
        ):
            return None
        device = self._device(doc.get("device"), key, table)
        slot = _slot(doc.get("ts"))
        values = doc.get("values", {})
        if (
            device is None
            or slot is None
            or not _valid_read_at(doc.get("read_at"))
            or not _valid_quality(doc.get("quality", 0))
            or type(values) is not dict
            or not _valid_values(values, table)
            or not _valid_extras(doc.get("extras", {}))
        ):
            return None
        return CacheReading(device, doc["device"], slot, _measures(values, table), payload)

    def _device(self, raw: object, key: bytes | None, table: Table) -> DeviceId | None:
        if type(raw) is not str or (key is not None and key != raw.encode()):
            return None
        device = self._devices.get(raw)
        if device is None:
            try:
                device = DeviceId.parse(raw)
            except ValueError:
                return None
            if len(self._devices) < 1_000_000:
                self._devices[raw] = device
        return device if device.table == table else None


def _measures(values: dict[str, Any], table: Table) -> tuple[float | None, ...]:
    return tuple(
        [v if v is None or type(v) is float else float(v) for v in map(values.get, _COLUMNS[table])]
    )


def _slot(raw: object) -> int | None:
    if type(raw) is not str or not _SLOT_RE.match(raw):
        return None
    try:
        return int(datetime.fromisoformat(raw).timestamp())
    except ValueError:
        return None


def _valid_read_at(raw: object) -> bool:
    if type(raw) is not str:
        return False
    try:
        return datetime.fromisoformat(raw).utcoffset() is not None
    except ValueError:
        return False


def _valid_quality(raw: object) -> bool:
    return type(raw) is int and 0 <= raw <= 0xFFFF


def _valid_values(values: dict[str, object], table: Table) -> bool:
    floats, ints = _FIELD_TYPES[table]
    for name, value in values.items():
        kind = type(value)
        if name in floats:
            if kind is not float and kind is not int and value is not None:
                return False
        elif name not in ints or (kind is not int and value is not None):
            return False
    return True


def _valid_extras(extras: object) -> bool:
    return type(extras) is dict and all(isinstance(v, _SCALARS) for v in extras.values())
