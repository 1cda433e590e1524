"""Messages of the control topic (`<prefix>.control.replay`), versioned JSON (orjson).

Two kinds travel on it, keyed by cluster so each cluster's messages stay in order:

- `ReplayRequest`: "cluster C, re-read table T's topic for this time range (or
  these partition offsets) and upsert what you find". Published by the gap
  detector (reason `sink_loss`) and by operators (`essctl replay --submit`).
- `ReplayStatus`: the sink's answer: started, progress, completed or failed,
  with counts. The detector waits for `completed` before it checks that the
  gap closed; `essctl` shows it as progress.

Time ranges are half-open `[start, end)` in whole UTC seconds, offset ranges
half-open `[start_offset, end_offset)`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ess_common.clusters import Cluster
from ess_common.model import Table

CONTROL_VERSION: Literal[1] = 1
MAX_DEVICES_PER_REQUEST = 5000

ReplayReason = Literal["sink_loss", "operator"]
ReplayState = Literal["started", "progress", "completed", "failed"]


def new_request_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlotRange(_Message):
    """Slots `[start, end)`: whole seconds, UTC."""

    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _whole_utc_second(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("needs a time zone")
        if value.microsecond:
            raise ValueError("must be a whole second")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _ordered(self) -> SlotRange:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


class OffsetRange(_Message):
    """Offsets `[start_offset, end_offset)` of one partition of the table's topic."""

    partition: Annotated[int, Field(ge=0)]
    start_offset: Annotated[int, Field(ge=0)]
    end_offset: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _ordered(self) -> OffsetRange:
        if self.end_offset <= self.start_offset:
            raise ValueError("end_offset must be greater than start_offset")
        return self


class ReplayRequest(_Message):
    kind: Literal["replay_request"] = "replay_request"
    v: Literal[1] = CONTROL_VERSION
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] = Field(default_factory=new_request_id)
    cluster: Cluster
    table: Table
    slots: SlotRange | None = None
    offsets: OffsetRange | None = None
    devices: tuple[str, ...] | None = Field(default=None, max_length=MAX_DEVICES_PER_REQUEST)
    reason: ReplayReason
    requested_by: Annotated[str, Field(min_length=1, max_length=64)]
    requested_at: datetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _one_range(self) -> ReplayRequest:
        if (self.slots is None) == (self.offsets is None):
            raise ValueError("a replay request names either a slot range or an offset range")
        return self


class ReplayStatus(_Message):
    kind: Literal["replay_status"] = "replay_status"
    v: Literal[1] = CONTROL_VERSION
    request_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    cluster: Cluster
    table: Table
    state: ReplayState
    messages_planned: int = 0
    messages_read: int = 0
    rows_in_range: int = 0
    rows_inserted: int = 0
    rows_present: int = 0
    undecodable: int = 0
    dead_lettered: int = 0
    detail: str | None = Field(default=None, max_length=500)
    at: datetime = Field(default_factory=utc_now)

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed")


ControlMessage = Annotated[ReplayRequest | ReplayStatus, Field(discriminator="kind")]
_CONTROL = TypeAdapter[ReplayRequest | ReplayStatus](ControlMessage)


class ControlDecodeError(ValueError):
    """A control-topic message this version cannot read; skipped, never guessed at."""


def encode_control(message: ReplayRequest | ReplayStatus) -> bytes:
    return orjson.dumps(message.model_dump(mode="json", exclude_none=True))


def decode_control(payload: bytes) -> ReplayRequest | ReplayStatus:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ControlDecodeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ControlDecodeError("not a JSON object")
    if doc.get("v") != CONTROL_VERSION:
        raise ControlDecodeError(f"unsupported control version {doc.get('v')!r}")
    try:
        return _CONTROL.validate_python(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "message"
        raise ControlDecodeError(f"{where}: {err['msg']}") from None
