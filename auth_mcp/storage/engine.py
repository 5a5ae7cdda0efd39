"""Making the database engine: the same code path for SQLite files and PostgreSQL."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from auth_mcp.storage.database_url import normalise_database_url, postgres_connection

# asyncpg's own default; a provider URL's connect_timeout replaces it.
POSTGRES_CONNECT_TIMEOUT = 60.0

# Whether a connection taken from the PostgreSQL pool is pinged first (see `without_ping`).
_ping_checkouts: ContextVar[bool] = ContextVar("auth_mcp_ping_checkouts", default=True)


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine tuned for its backend, for a URL in any spelling database_url.py accepts.

    SQLite: one connection per process, so the process's writes queue in asyncio instead of
    fighting over the file lock; WAL journal; foreign keys on (they are off by default in
    SQLite, and revocation cascades rely on them); every transaction `BEGIN IMMEDIATE` so that a
    second process (the admin command) waits for the lock instead of failing mid-transaction.

    PostgreSQL: asyncpg connects with the URL as a libpq DSN, which it parses itself, so that
    sslmode, sslrootcert and the other libpq parameters mean what they mean to libpq
    (SQLAlchemy would pass them to asyncpg as unknown keyword arguments). A connection is pinged
    when it leaves the pool, except inside `without_ping`: one found dead (the server restarted
    or ended it since it was pooled) is replaced, and every connection pooled before it is
    dropped, before the caller sends anything on it.

    Both: bound parameters never appear in SQLAlchemy's logs or in the text of its errors
    (`hide_parameters`), since they include encrypted GitHub tokens and clients' `state`, and a
    database error is logged.
    """
    database_url = normalise_database_url(database_url)
    if database_url.startswith("sqlite"):
        _create_private_file(make_url(database_url).database)
        engine = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=30, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    import asyncpg  # PostgreSQL only

    connection = postgres_connection(database_url)
    connect = functools.partial(asyncpg.connect, connection.dsn, timeout=connection.timeout or POSTGRES_CONNECT_TIMEOUT)
    engine = create_async_engine(
        database_url,
        async_creator=connect,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        hide_parameters=True,
    )
    _ping_on_checkout(engine)
    return engine


@contextlib.contextmanager
def without_ping() -> Iterator[None]:
    """PostgreSQL connections checked out in this block are not pinged first.

    For callers that run one idempotent statement and run it again when it fails on a closed
    connection (the store's reads): the ping would cost them a round trip, three with the
    transaction asyncpg wraps it in, on every checkout, to guard against what they recover from.
    A write cannot be sent twice, so writes keep the ping.
    """
    token = _ping_checkouts.set(False)
    try:
        yield
    finally:
        _ping_checkouts.reset(token)


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping`, skipped inside `without_ping` (pool_pre_ping is all or nothing).

    Like pool_pre_ping, a connection made for this checkout is not pinged: it has just answered.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["auth_mcp_fresh"] = True  # the pool clears `info` when it drops the connection

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        fresh = record.info.pop("auth_mcp_fresh", False)
        if fresh or not _ping_checkouts.get():
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # The pool replaces this connection and drops every one pooled before now: the
            # database has probably restarted (what pool_pre_ping does too).
            raise sa.InvalidatePoolError(f"pooled connection closed: {type(exc).__name__}") from exc


def _create_private_file(database: str | None) -> None:
    """Create the SQLite file readable by its owner only, like the key file beside it: it holds
    encrypted GitHub tokens and token hashes. SQLite gives its -wal and -shm files the same mode.
    An existing file keeps the mode its operator gave it. A file that cannot be created raises
    here, before any connection exists, and start-up explains why (database_errors.py)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # Takes effect when the file is new (before its first table); older files are converted
        # by storage/compaction.py. Lets purges give pages back (the high-water mark otherwise stays).
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
