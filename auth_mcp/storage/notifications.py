"""Revocations reach every replica: PostgreSQL LISTEN/NOTIFY; on SQLite, other processes' writes.

A replica that ends a grant (revocation, replay, rotation, a dead GitHub token) announces its id
on a channel; every replica listening drops that grant's tokens from its verification cache at
once. With SQLite there is one server process, but the admin commands revoke from a process of
their own: the server notices their commits within half a second (sqlite_changes.py) and drops
its cache. If the listening connection is
lost, notices may have been missed, so the cache is emptied and the connection re-opened; the
cache's short entry lifetime (verifier.py) bounds staleness even before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_mcp.storage.availability import describe
from auth_mcp.storage.database_url import postgres_connection
from auth_mcp.storage.sqlite_changes import ForeignWriteWatch

logger = logging.getLogger(__name__)

CHANNEL = "auth_mcp_revocations"
_RETRY_SECONDS = (0.5, 1, 2, 5, 10)


class Announcer:
    """Sends and receives grant-revocation notices."""

    def __init__(self, *, engine: AsyncEngine, on_revoked: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        self._engine = engine
        self._on_revoked = on_revoked
        self._on_gap = on_gap
        self._postgres = engine.dialect.name == "postgresql"
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._sqlite_watch = ForeignWriteWatch(engine=engine, on_change=on_gap) if engine.dialect.name == "sqlite" else None

    @property
    def enabled(self) -> bool:
        return self._postgres

    async def announce(self, grant_id: str) -> None:
        """Tell the other replicas (the revoking replica already dropped its own cache entries).

        Never raises: what is announced has already been committed (a rotation, a revocation),
        and the caller's answer must not turn into an error because of it (a client refused
        its rotated tokens would replay the old refresh token and lose the grant). A notice that
        cannot be sent is logged; the other replicas' cache entries expire within `max_age`.
        """
        if not self._postgres:
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(text("SELECT pg_notify(:channel, :grant_id)"), {"channel": CHANNEL, "grant_id": grant_id})
        except Exception as exc:  # noqa: BLE001 - see above: logged, never raised
            logger.warning(
                "could not tell the other replicas that grant %s changed (%s); their cached tokens expire on their own",
                grant_id[:8],
                describe(exc),
            )

    async def start(self) -> None:
        if self._sqlite_watch is not None:
            await self._sqlite_watch.start()
        if not self._postgres or self._task is not None:
            return
        self._task = asyncio.create_task(self._listen_forever(), name="auth-mcp revocation listener")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._listening.wait()

    async def stop(self) -> None:
        if self._sqlite_watch is not None:
            await self._sqlite_watch.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        import asyncpg  # PostgreSQL only

        connection_args = postgres_connection(self._engine.url.render_as_string(hide_password=False))
        attempt = 0
        while True:
            try:
                connection = await asyncpg.connect(connection_args.dsn, timeout=connection_args.timeout or 10)
            except (OSError, asyncpg.PostgresError) as exc:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                logger.warning("revocation listener cannot connect (%s); retrying in %s s", type(exc).__name__, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            lost = asyncio.Event()

            def on_notice(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
                self._on_revoked(payload)

            def on_termination(_connection: Any, lost: asyncio.Event = lost) -> None:
                lost.set()  # bound to this connection's event, not a later one's

            try:
                await connection.add_listener(CHANNEL, on_notice)
                connection.add_termination_listener(on_termination)
                if attempt:
                    # Notices sent while we were away are lost: forget everything cached.
                    self._on_gap()
                attempt = 0
                self._listening.set()
                while not lost.is_set():
                    # A cheap liveness probe: a dead TCP connection is noticed within seconds.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(15):
                            await lost.wait()
                    if not lost.is_set():
                        try:
                            async with asyncio.timeout(5):
                                await connection.execute("SELECT 1")
                        except (OSError, asyncpg.PostgresError, TimeoutError):
                            lost.set()
                logger.warning("revocation listener lost its connection; reconnecting")
                self._on_gap()
                attempt = 1
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)
