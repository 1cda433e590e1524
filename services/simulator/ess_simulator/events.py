"""Warnings and alarms that appear now and then, the same for a given seed.

Time is cut into windows; in each window a device raises one event with a
given probability, for a stretch of seconds inside that window.
"""

from __future__ import annotations

from dataclasses import dataclass

from ess_simulator.noise import uniform
from ess_sunspec.models import BATTERY_802

# Bit numbers of SunSpec 802/803/804 Evt1.
BATTERY_WARNING_BITS = (17, 19, 26)  # voltage/temperature imbalance, other warning
BATTERY_ALARM_BITS = (25, 0)  # other alarm, communication error
OVER_TEMP_WARNING = 2
OVER_VOLT_WARNING = 10
UNDER_VOLT_WARNING = 12
UNDER_SOC_MIN_WARNING = 14
OVER_SOC_MAX_WARNING = 16
# Bit numbers of SunSpec 701 Alrm and 203 Evt.
PCS_ALARM_BITS = (7, 16, 5)  # over temperature, manufacturer alarm, cabinet open
METER_EVENT_BITS = (16, 17)  # OEM01, OEM02

# Which 802 Evt1 bits are warnings and which alarms, from the symbol names.
_EVT1 = BATTERY_802.point("Evt1").symbols
BATTERY_WARNING_MASK = sum(1 << bit for name, bit in _EVT1 if name.endswith("_WARNING"))
BATTERY_ALARM_MASK = sum(
    1 << bit for name, bit in _EVT1 if not name.endswith("_WARNING") and "RESERVED" not in name
)

_ALARM_SHARE = 0.15  # of the events raised, this share are alarms rather than warnings


@dataclass(frozen=True, slots=True)
class EventPolicy:
    window_s: int
    probability: float  # per device and window

    def bits(
        self,
        key: int,
        second: int,
        warning_bits: tuple[int, ...],
        alarm_bits: tuple[int, ...] = (),
    ) -> int:
        """Bit mask of the event active at `second` for the device `key`, or 0."""
        return _occasional_event_bits(
            key, second, self.window_s, self.probability, warning_bits, alarm_bits
        )


def _occasional_event_bits(  # noqa: PLR0917 - private, called from one place
    key: int,
    second: int,
    window_s: int,
    probability: float,
    warning_bits: tuple[int, ...],
    alarm_bits: tuple[int, ...],
) -> int:
    window = second // window_s
    if uniform(key, window, 1) >= probability:
        return 0
    start = window * window_s + int(uniform(key, window, 2) * window_s / 2)
    duration = 5 + int(uniform(key, window, 3) * window_s / 2)
    if not start <= second < start + duration:
        return 0
    pool = warning_bits
    if alarm_bits and uniform(key, window, 4) < _ALARM_SHARE:
        pool = alarm_bits
    return 1 << pool[int(uniform(key, window, 5) * len(pool))]
