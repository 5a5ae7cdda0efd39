"""The audit trail in the database: written in batches, read by `auth-mcp audit`, purged by age.

The rows stand alone (no foreign keys): the trail outlives the grants and clients it names, so
a revoked person's calls stay on record until the retention period ends.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_mcp.audit.events import AuditEvent, EventRow
from auth_mcp.clock import Clock
from auth_mcp.storage.schema import audit_events

_PURGE_BATCH = 5000
_INSERTED = AuditEvent._fields  # an event is its row: at, github_user_id, ..., arguments
# SQLite: rows per INSERT statement (600 parameters, within SQLite's oldest limit of 999).
_ROWS_PER_STATEMENT = 50
_ROWS_PER_CALL = 500  # rows per executemany (a batch may hold thousands: the recorder's batch_size)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of `auth-mcp audit`; None matches everything."""

    user: str | None = None  # GitHub numeric id or login (case-insensitive)
    client_id: str | None = None
    upstream: str | None = None
    tool: str | None = None  # a glob: * and ? (case-insensitive)
    outcome: str | None = None
    since: float | None = None  # Unix seconds
    limit: int = 100


class AuditStore:
    def __init__(self, *, engine: AsyncEngine, clock: Clock, retention_days: int) -> None:
        """`retention_days`: how long events are kept (0: forever)."""
        self._engine = engine
        self._clock = clock
        self._retention_days = retention_days

    async def add(self, events: Sequence[EventRow]) -> None:
        """Executemany of the driver, in one transaction: every tool call is a row, and
        SQLAlchemy's per-row parameter processing cost more than the rest of recording a call
        (none of these columns' types converts a value). The statement is compiled once, for this
        engine's dialect, with the columns in the event's order, so an event is its row (but for
        whole seconds). On SQLite, whose module steps, resets and locks once per executemany row,
        the rows go 50 to an INSERT (a quarter less per row); what is left over, one by one.
        PostgreSQL's driver pipelines one prepared row statement, and the server does the rest.
        The rows go `_ROWS_PER_CALL` to a call: the event loop makes the next ones while the
        driver writes these, and never holds up requests making thousands."""
        if not events:
            return
        async with self._engine.begin() as conn:
            for start in range(0, len(events), _ROWS_PER_CALL):
                await self._insert(conn, events[start : start + _ROWS_PER_CALL])

    async def _insert(self, conn: AsyncConnection, events: Sequence[EventRow]) -> None:
        rows = [(int(event[0]), *event[1:]) for event in events]  # the columns' order (_INSERTED)
        many, whole = self._inserts[1], len(rows) - len(rows) % _ROWS_PER_STATEMENT
        if many is not None and whole:
            values, width = list(itertools.chain.from_iterable(rows[:whole])), len(_INSERTED) * _ROWS_PER_STATEMENT
            await conn.exec_driver_sql(many, [tuple(values[i : i + width]) for i in range(0, len(values), width)])
            rows = rows[whole:]
        if rows:
            await conn.exec_driver_sql(self._inserts[0], rows)

    @functools.cached_property
    def _inserts(self) -> tuple[str, str | None]:
        """The INSERT of one row and, on SQLite, of `_ROWS_PER_STATEMENT` rows (its `?` placeholders
        name no row, so the row's VALUES group repeated is the statement). No RETURNING: nothing
        reads the new rows' ids."""
        compiled = insert(audit_events).inline().compile(dialect=self._engine.dialect, column_keys=list(_INSERTED))
        assert compiled.positiontup == list(_INSERTED), compiled.positiontup  # the tuples' order above
        one = str(compiled)
        if self._engine.dialect.paramstyle != "qmark":
            return one, None
        head, _, row = one.partition(" VALUES ")
        assert row == "(" + ", ".join(["?"] * len(_INSERTED)) + ")", one
        return one, f"{head} VALUES {', '.join([row] * _ROWS_PER_STATEMENT)}"

    async def find(self, query: AuditQuery) -> list[AuditEvent]:
        """Newest first."""
        c = audit_events.c
        statement = select(audit_events).order_by(c.at.desc(), c.id.desc()).limit(query.limit)
        if query.user is not None:
            login = c.github_login.ilike(_escape(query.user), escape="\\")
            # A login may be all digits, so digits match the numeric id or such a login.
            statement = statement.where(or_(c.github_user_id == int(query.user), login) if query.user.isdigit() else login)
        if query.client_id is not None:
            statement = statement.where(c.client_id == query.client_id)
        if query.upstream is not None:
            statement = statement.where(c.upstream == query.upstream)
        if query.tool is not None:
            statement = statement.where(c.tool.ilike(_like(query.tool), escape="\\"))
        if query.outcome is not None:
            statement = statement.where(c.outcome == query.outcome)
        if query.since is not None:
            statement = statement.where(c.at >= int(query.since))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [
            AuditEvent(
                at=float(row["at"]),
                github_user_id=row["github_user_id"],
                github_login=row["github_login"],
                client_id=row["client_id"],
                client_name=row["client_name"],
                upstream=row["upstream"],
                tool=row["tool"],
                outcome=row["outcome"],
                latency_ms=row["latency_ms"],
                request_id=row["request_id"],
                detail=row["detail"],
                arguments=row["arguments"],
            )
            for row in rows
        ]

    async def purge_expired(self) -> int:
        """Delete events older than the retention period; returns how many."""
        if not self._retention_days:
            return 0
        return await self.purge_before(self._clock.now() - self._retention_days * 86400)

    async def purge_before(self, cutoff: float) -> int:
        """Delete events older than `cutoff` (Unix seconds), in batches; returns how many."""
        key = audit_events.c.id
        total = 0
        while True:
            async with self._engine.begin() as conn:
                batch = select(key).where(audit_events.c.at < int(cutoff)).limit(_PURGE_BATCH).scalar_subquery()
                result = await conn.execute(delete(audit_events).where(key.in_(batch)))
            total += result.rowcount
            if result.rowcount < _PURGE_BATCH:
                return total


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(glob: str) -> str:
    """A shell glob (* and ?) as a LIKE pattern with \\ as the escape character."""
    return _escape(glob).replace("*", "%").replace("?", "_")
