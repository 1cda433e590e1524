"""Where each partition is read again from after a rebuild, and how the marker keeps it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from aiokafka import TopicPartition


@dataclass(frozen=True)
class RewindTarget:
    """Where each partition is read again from after a rebuild."""

    from_slot: int  # partitions without a sink offset: the first offset at/after this slot
    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)  # sink group's commits

    def marker_fields(self) -> dict[str, str]:
        by_key = {f"{tp.topic}:{tp.partition}": o for tp, o in sorted(self.offsets.items())}
        return {"rewind_to": str(self.from_slot), "rewind_offsets": orjson.dumps(by_key).decode()}

    @classmethod
    def from_marker(cls, marker: Mapping[str, str]) -> RewindTarget | None:
        if "rewind_to" not in marker:
            return None
        by_key: dict[str, int] = orjson.loads(marker.get("rewind_offsets", "{}"))
        offsets = {
            TopicPartition(topic, int(partition)): offset
            for key, offset in by_key.items()
            for topic, partition in (key.rsplit(":", 1),)
        }
        return cls(int(marker["rewind_to"]), offsets)
