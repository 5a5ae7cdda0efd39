"""Time as a seam: production reads the system clock, tests move a clock by hand instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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


class SecondsCache:
    """A timestamp's text by the second it falls in: formatting a time costs more than the rest of
    an access line, and a busy server writes hundreds of lines per second."""

    def __init__(self, render: Callable[[int], str]) -> None:
        self._render = render
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        second = int(created)
        last = self._last
        if last[0] != second:
            last = self._last = (second, self._render(second))
        return last[1]


# "000" to "999": a log line's milliseconds by index (a format spec is parsed on every use).
MILLISECONDS: tuple[str, ...] = tuple(f"{n:03d}" for n in range(1000))
