"""When the database cannot serve: one exception for an outage, and whether writes work now.

An outage (the server is down or restarting, the disk is full, the database is read-only, the
pool is exhausted) is not a bug: the request can succeed later. The store turns such failures
into `StorageUnavailable`, which the HTTP layer answers with 503 and `Retry-After` on every
endpoint (http/outage.py). Everything else (an integrity error, a bad statement) stays what it is.

`WriteHealth` remembers whether the last write failed: `/readyz` is red from a failed write until
a write commits again, whether that write is real traffic or the readiness probe's own.
"""

from __future__ import annotations

import logging
import math

from sqlalchemy import exc as sa

from auth_mcp.clock import Clock

logger = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds a client is asked to wait: PostgreSQL restarts and failovers take about that

# SQLSTATE classes and codes that mean "not now" rather than "wrong" (PostgreSQL appendix A):
# 08 connection exception, 53 insufficient resources (disk full, out of memory, too many
# connections), 57 operator intervention (shutdown, starting up), 58 system error (I/O);
# 25006 read-only transaction (a standby, or default_transaction_read_only).
_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})
_OUTAGE_CODES = frozenset({"25006"})


class StorageUnavailable(Exception):
    """The database cannot serve this request now; the same request may succeed later.

    `reason` is for the log (the driver's first line, never SQL or parameters); `message` is
    what a client is told.
    """

    message = "The server cannot reach its database right now."

    def __init__(self, reason: str, *, retry_after: int = RETRY_AFTER) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"storage unavailable: {reason}")


def is_outage(error: BaseException) -> bool:
    """Whether a database failure is an outage (worth a retry later) rather than a bug."""
    if isinstance(error, StorageUnavailable):
        return True
    if isinstance(error, sa.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa.DBAPIError):
        if error.connection_invalidated:
            return True
        # SQLite reports a full disk, a read-only file and I/O errors as OperationalError;
        # both drivers report closed connections as InterfaceError.
        if isinstance(error, (sa.OperationalError, sa.InterfaceError)):
            return True
        return _is_outage_state(_sqlstate(error.orig))
    if isinstance(error, OSError):  # connection refused or reset, a timed-out connect
        return True
    # asyncpg's own errors can escape at connect time, unwrapped.
    return _is_outage_state(_sqlstate(error))


def describe(error: BaseException) -> str:
    """One line, without SQL or bound parameters: the error's type and the driver's first line."""
    if isinstance(error, StorageUnavailable):
        return error.reason
    orig = error.orig if isinstance(error, sa.DBAPIError) else error
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first_line[:160]}" if first_line else type(orig).__name__


def _sqlstate(error: object) -> str | None:
    value = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return value if isinstance(value, str) else None


def _is_outage_state(sqlstate: str | None) -> bool:
    return sqlstate is not None and (sqlstate[:2] in _OUTAGE_CLASSES or sqlstate in _OUTAGE_CODES)


class WriteHealth:
    """Whether writes work: failing from a failed write until one commits.

    Only writes clear it: reads keep working on a full disk or a read-only database.
    """

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._failing_since: float | None = None

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def failing_for(self) -> int:
        """Whole seconds since writes started failing (0 when they work)."""
        if self._failing_since is None:
            return 0
        return max(0, math.floor(self._clock.now() - self._failing_since))

    def write_failed(self, reason: str) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock.now()
            logger.warning("database writes are failing: %s", reason)

    def write_succeeded(self) -> None:
        if self._failing_since is not None:
            logger.warning("database writes work again after %d s", self.failing_for())
            self._failing_since = None
