"""A site's charge/discharge power schedule and its exact integrals.

Power is a sinusoid, positive when discharging. Because it is a closed-form
function of time, so are its integrals: state of charge and the energy
counters come out the same whatever the poll rate, and need no history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Energy counters and cycle counts start from this instant (2024-01-01T00:00:00Z).
EPOCH_S = 1_704_067_200.0
TWO_PI = 2.0 * math.pi


def _discharge_progress(theta: float) -> float:
    """Integral of max(sin, 0) from 0 to theta (theta >= 0)."""
    cycles, within = divmod(theta, TWO_PI)
    part = 1.0 - math.cos(within) if within <= math.pi else 2.0
    return 2.0 * cycles + part


def _charge_progress(theta: float) -> float:
    """Integral of max(-sin, 0) from 0 to theta (theta >= 0)."""
    cycles, within = divmod(theta, TWO_PI)
    part = 0.0 if within <= math.pi else 1.0 + math.cos(within)
    return 2.0 * cycles + part


@dataclass(frozen=True, slots=True)
class PowerSchedule:
    """P(t) = amplitude * sin(omega * (t - epoch) + phase), watts, + = discharge."""

    amplitude_w: float
    period_s: float
    phase_rad: float

    @property
    def omega(self) -> float:
        return TWO_PI / self.period_s

    def theta(self, t: float) -> float:
        return self.omega * (t - EPOCH_S) + self.phase_rad

    def power_w(self, t: float) -> float:
        return self.amplitude_w * math.sin(self.theta(t))

    def soc_wave(self, t: float) -> float:
        """Shape of the state of charge, in [-1, 1]: its derivative is -P."""
        return math.cos(self.theta(t))

    def discharged_wh(self, t: float) -> float:
        """Energy delivered since the epoch, watt-hours."""
        span = _discharge_progress(self.theta(t)) - _discharge_progress(self.phase_rad)
        return self.amplitude_w / self.omega * span / 3600.0

    def charged_wh(self, t: float) -> float:
        """Energy absorbed since the epoch, watt-hours."""
        span = _charge_progress(self.theta(t)) - _charge_progress(self.phase_rad)
        return self.amplitude_w / self.omega * span / 3600.0
