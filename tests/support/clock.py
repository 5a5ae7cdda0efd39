"""A clock tests move by hand, instead of sleeping."""

from __future__ import annotations

import asyncio
import time


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        self._now = start if start is not None else time.time()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Time passes at once; other tasks get their turn, as they would while sleeping."""
        self._now += seconds
        await asyncio.sleep(0)
