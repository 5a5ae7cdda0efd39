"""Time as a seam: production reads the system clock, tests move a clock by hand instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch. Guarantees nothing about monotonicity."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()
