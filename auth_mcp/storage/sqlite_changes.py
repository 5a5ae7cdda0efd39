"""Revocations made by another process reach a SQLite server within a second.

With PostgreSQL, revocations travel by LISTEN/NOTIFY (notifications.py). A SQLite file has no
such channel, and the admin commands (`auth-mcp revoke-user`, `grants revoke`) run in a process
of their own: without this, a revoked token stayed valid in the server's verification cache for
up to the cache's entry lifetime (30 s).

SQLite's `PRAGMA data_version` changes, for one connection, exactly when another connection
committed to the database file; its own commits do not change it. The server's engine keeps a
single connection (engine.py), so polling the pragma on that connection every half second tells
us, for the price of one pragma, that another process wrote. We do not know what it changed,
so the whole verification cache is dropped (`on_change`); other processes write rarely (the
admin commands), and the cache refills with one read per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class ForeignWriteWatch:
    """Calls `on_change` when another process committed to the SQLite file."""

    def __init__(self, *, engine: AsyncEngine, on_change: Callable[[], None], interval: float = POLL_SECONDS) -> None:
        self._engine = engine
        self._on_change = on_change
        self._interval = interval
        self._seen: tuple[int, int] | None = None  # (connection identity, data_version)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._seen = await self._version()
            self._task = asyncio.create_task(self._poll_forever(), name="auth-mcp SQLite change watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> bool:
        """Look once; True (and `on_change` called) if another process wrote since the last look.

        A new connection (the pool replaced it) counts as a change: its counter starts afresh.
        """
        version = await self._version()
        if version == self._seen:
            return False
        self._seen = version
        self._on_change()
        return True

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("checking the SQLite database for other processes' changes failed: %s", exc)

    async def _version(self) -> tuple[int, int]:
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            # The driver's own connection: a pragma outside SQLAlchemy's transaction handling,
            # so no BEGIN IMMEDIATE (engine.py) and no write lock for a read of a counter.
            driver = raw.driver_connection
            assert driver is not None
            cursor = await driver.execute("PRAGMA data_version")
            try:
                row = await cursor.fetchone()
            finally:
                await cursor.close()
            return id(driver), int(row[0])
