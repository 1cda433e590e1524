"""A stand-in service for supervisor tests: sleeps; exits with 3 after SLEEPER_EXIT_AFTER_S."""

from __future__ import annotations

import os
import time

if __name__ == "__main__":
    time.sleep(float(os.environ.get("SLEEPER_EXIT_AFTER_S", "3600")))
    raise SystemExit(3)
