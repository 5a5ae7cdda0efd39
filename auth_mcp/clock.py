"""Time as a seam: production reads the system clock, tests move a clock by hand instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch. Guarantees nothing about monotonicity."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Let `seconds` of this clock's time pass (a test clock advances instead of waiting)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
