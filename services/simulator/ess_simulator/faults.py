"""Fault knobs per device (or per whole site gateway), set at start or at run time.

A fault targets a device id ("site1/bank1/rack3") or a site id ("site1", every
unit behind that gateway); a device's own faults win over its site's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Exception codes a Modbus server may answer with.
MODBUS_EXCEPTION_CODES = frozenset({1, 2, 3, 4, 5, 6, 8, 10, 11})


class UnknownTargetError(KeyError):
    """A fault names a device or site the simulator does not serve."""


class FaultSpec(BaseModel):
    """How a device misbehaves. All knobs off is a healthy device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mute: bool = False  # never answer; the connection stays open
    delay_s: float = Field(default=0.0, ge=0.0, le=3600.0)  # answer this late
    exception_code: int | None = None  # answer every request with this exception
    drop: bool = False  # close the TCP connection on the next request (once)
    drop_probability: float = Field(default=0.0, ge=0.0, le=1.0)  # ... or at random
    sentinel: bool = False  # report SunSpec "not implemented" for every measurement

    @field_validator("exception_code")
    @classmethod
    def _known_exception(cls, code: int | None) -> int | None:
        if code is not None and code not in MODBUS_EXCEPTION_CODES:
            raise ValueError(f"must be one of {sorted(MODBUS_EXCEPTION_CODES)}")
        return code

    @property
    def active(self) -> bool:
        return self != FaultSpec()


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What a gateway does with one request, in order: drop beats mute beats delay."""

    drop: bool = False
    mute: bool = False
    delay_s: float = 0.0
    exception_code: int | None = None


class FaultBoard:
    """The current faults, keyed by device or site id."""

    def __init__(self, targets: set[str]) -> None:
        self._targets = frozenset(targets)
        self._faults: dict[str, FaultSpec] = {}

    def _check(self, target: str) -> None:
        if target not in self._targets:
            raise UnknownTargetError(target)

    def set(self, target: str, spec: FaultSpec) -> FaultSpec:
        """Replace the target's faults; an all-off spec clears them."""
        self._check(target)
        if spec.active:
            self._faults[target] = spec
        else:
            self._faults.pop(target, None)
        return spec

    def clear(self, target: str) -> None:
        self._check(target)
        self._faults.pop(target, None)

    def clear_all(self) -> None:
        self._faults.clear()

    def snapshot(self) -> dict[str, FaultSpec]:
        return dict(self._faults)

    def for_target(self, target: str) -> FaultSpec | None:
        return self._faults.get(target)

    def effective(self, device_id: str, site_id: str) -> tuple[str, FaultSpec] | None:
        """The faults that apply to a device, with the target they were set on."""
        for target in (device_id, site_id):
            spec = self._faults.get(target)
            if spec is not None:
                return target, spec
        return None

    def consume_drop(self, target: str) -> None:
        """A one-shot drop fired: switch it off, keep the other knobs."""
        spec = self._faults.get(target)
        if spec is not None and spec.drop:
            self.set(target, spec.model_copy(update={"drop": False}))

    def action(self, device_id: str, site_id: str, rng: random.Random) -> FaultAction | None:
        """How to treat one request to the device (None: answer normally); a
        one-shot drop is consumed here."""
        hit = self.effective(device_id, site_id)
        if hit is None:
            return None
        target, spec = hit
        dropped_at_random = spec.drop_probability > 0 and rng.random() < spec.drop_probability
        if spec.drop or dropped_at_random:
            if spec.drop:
                self.consume_drop(target)
            return FaultAction(drop=True)
        return FaultAction(mute=spec.mute, delay_s=spec.delay_s, exception_code=spec.exception_code)
