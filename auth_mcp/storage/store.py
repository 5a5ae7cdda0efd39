"""The store: one implementation over SQLAlchemy 2 async Core for SQLite and PostgreSQL.

Single-use is enforced by the database, not by the caller: consuming a code, a refresh token
or an upstream state is one conditional UPDATE/DELETE whose row count says who won, so two
concurrent requests (in one process or on two replicas) can never both succeed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Executable, and_, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_mcp.clock import Clock
from auth_mcp.storage import schema as s
from auth_mcp.storage.availability import StorageUnavailable, WriteHealth, describe, is_outage
from auth_mcp.storage.engine import without_ping
from auth_mcp.storage.records import (
    AccessTokenRecord,
    ClientRecord,
    CodeRecord,
    GitHubCredentials,
    Grant,
    PendingAuthorization,
    PurgeCounts,
    RefreshTokenRecord,
    TokenPair,
)

logger = logging.getLogger(__name__)

# Registrations that never completed an authorization are deleted after this long.
UNUSED_CLIENT_TTL = 24 * 3600
# Used codes and rotated refresh tokens are kept this long to recognise replays, then purged.
_PURGE_BATCH = 1000

StateOutcome = Literal["ok", "used", "unknown"]

# The lookups of every tool call that misses a cache, built once: building a Select and its
# cache key on each call costs the client more CPU than PostgreSQL spends answering it.
_ACCESS_TOKEN_BY_HASH = (
    select(
        s.access_tokens.c.token_hash,
        s.access_tokens.c.grant_id,
        s.access_tokens.c.client_id,
        s.access_tokens.c.scopes,
        s.access_tokens.c.resource,
        s.access_tokens.c.expires_at,
        s.grants.c.client_name,
        s.grants.c.github_user_id,
        s.grants.c.github_login,
    )
    .join(s.grants, s.grants.c.grant_id == s.access_tokens.c.grant_id)
    .where(s.access_tokens.c.token_hash == bindparam("token_hash"))
)
_GRANT_BY_ID = select(s.grants).where(s.grants.c.grant_id == bindparam("grant_id"))


class Store(Protocol):
    """Persistence of clients, consent requests, grants and tokens.

    Guarantees: every consume_* / rotate_* method is atomic and succeeds for exactly one caller;
    deleting a grant deletes its codes and tokens; `add_client` / `add_pending` with a cap keep
    at most that many unused registrations / unapproved requests, evicting the oldest first,
    and return how many they evicted (under concurrent writers on PostgreSQL the cap can be
    exceeded by the number of concurrent inserts, never more); a database that cannot serve
    (down, full, read-only) raises `StorageUnavailable`, and nothing was changed unless the
    commit had already been sent when the connection died. Does not check: expiry of what it returns
    (callers compare `expires_at` with their clock), client authentication, PKCE, scopes.
    """

    async def add_client(self, record: ClientRecord, *, max_unused: int | None = None) -> int: ...
    async def get_client(self, client_id: str) -> ClientRecord | None: ...
    async def delete_client(self, client_id: str) -> list[str]: ...
    async def list_clients(self) -> list[ClientRecord]: ...

    async def add_pending(self, pending: PendingAuthorization, *, max_pending: int | None = None) -> int: ...
    async def get_pending(self, request_hash: str) -> PendingAuthorization | None: ...
    async def approve_pending(
        self, request_hash: str, *, upstream_state_hash: str, github_verifier_enc: str, expires_at: int
    ) -> bool: ...
    async def delete_pending(self, request_hash: str) -> bool: ...
    async def take_pending_by_state(
        self, upstream_state_hash: str
    ) -> tuple[StateOutcome, PendingAuthorization | None]: ...

    async def add_grant_with_code(self, grant: Grant, code: CodeRecord) -> None: ...
    async def get_grant(self, grant_id: str) -> Grant | None: ...
    async def list_grants(self, *, github_user_id: int | None = None) -> list[Grant]: ...
    async def last_token_issued(self, grant_ids: Sequence[str]) -> dict[str, int]: ...
    async def update_github_credentials(self, grant_id: str, credentials: GitHubCredentials) -> bool: ...
    async def acquire_refresh_lease(self, grant_id: str, *, until: int) -> bool: ...
    async def release_refresh_lease(self, grant_id: str) -> None: ...
    async def delete_grant(self, grant_id: str) -> Grant | None: ...

    async def get_code(self, code_hash: str) -> CodeRecord | None: ...
    async def consume_code(self, code_hash: str, tokens: TokenPair, *, client_id: str) -> bool: ...

    async def get_access_token(self, token_hash: str) -> AccessTokenRecord | None: ...
    async def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None: ...
    async def rotate_refresh_token(self, token_hash: str, tokens: TokenPair) -> bool: ...

    async def take_expired_grants(self, *, limit: int) -> list[Grant]: ...
    async def purge_expired(self) -> PurgeCounts: ...


def _scopes(value: str) -> tuple[str, ...]:
    return tuple(value.split()) if value else ()


def _join(scopes: Iterable[str]) -> str:
    return " ".join(scopes)


class SqlStore:
    """`Store` over an `AsyncEngine` (see storage/engine.py for how engines are made)."""

    def __init__(self, *, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        # PostgreSQL reads run outside a transaction (see `_read`); SQLite's stay as they were.
        postgres = engine.dialect.name == "postgresql"
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else engine
        self._clock = clock
        self.health = WriteHealth(clock=clock)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; an outage becomes `StorageUnavailable`, and every outcome updates `health`."""
        try:
            async with self._engine.begin() as conn:
                yield conn
        except Exception as exc:
            if not is_outage(exc):
                raise
            self.health.write_failed(describe(exc))
            raise StorageUnavailable(describe(exc)) from exc
        self.health.write_succeeded()

    async def _read(self, query: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        """The rows of one read-only statement; an outage becomes `StorageUnavailable`.

        On PostgreSQL this is one round trip (a token lookup's whole cost when it is not cached):
        the statement runs on its own, outside a transaction (autocommit: no BEGIN and ROLLBACK
        around it; one statement sees one snapshot either way), on a pooled connection that is
        not pinged first (engine.without_ping). A pooled connection the server has closed since
        (a database restart, an idle connection ended) fails; SQLAlchemy then drops every
        connection pooled before the failure, and the read runs once more on a new connection
        (running a read twice is harmless). One statement per call: outside a transaction, two
        statements could see two different states of the database.
        """
        try:
            try:
                return await self._read_once(query, params)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                logger.info("a pooled database connection was closed (%s); reading again on a new one", describe(exc))
                return await self._read_once(query, params)
        except Exception as exc:
            if not is_outage(exc):
                raise
            raise StorageUnavailable(describe(exc)) from exc

    async def _read_once(self, query: Executable, params: Mapping[str, Any] | None) -> Sequence[Row[Any]]:
        with without_ping():
            async with self._reader.connect() as conn:
                return (await conn.execute(query, params)).all()

    async def _read_one(self, query: Executable, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        rows = await self._read(query, params)
        return rows[0] if rows else None

    async def probe_write(self) -> bool:
        """Whether a write commits now (the readiness check asks).

        Rewrites the schema version row with itself: a real write transaction that changes nothing.
        """
        try:
            async with self._writing() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
        except StorageUnavailable:
            return False
        return True

    def _now(self) -> int:
        return int(self._clock.now())

    # Clients ---------------------------------------------------------------------------------

    async def add_client(self, record: ClientRecord, *, max_unused: int | None = None) -> int:
        table = s.clients
        async with self._writing() as conn:
            evicted = 0
            if max_unused is not None:
                unused = table.c.used_at.is_(None)
                evicted = await _evict_oldest(conn, table, table.c.client_id, cap=max_unused, among=unused, oldest_first=[table.c.created_at])
            await conn.execute(
                insert(s.clients).values(**_columns(record))
            )
        return evicted

    async def get_client(self, client_id: str) -> ClientRecord | None:
        row = await self._read_one(select(s.clients).where(s.clients.c.client_id == client_id))
        if row is None:
            return None
        return _client(row)

    async def list_clients(self) -> list[ClientRecord]:
        rows = await self._read(select(s.clients).order_by(s.clients.c.created_at))
        return [_client(row) for row in rows]

    async def delete_client(self, client_id: str) -> list[str]:
        """Delete a client and every grant issued to it; returns the deleted grant ids."""
        async with self._writing() as conn:
            grant_ids = list(
                (await conn.execute(select(s.grants.c.grant_id).where(s.grants.c.client_id == client_id))).scalars()
            )
            await _delete_grants(conn, grant_ids)
            await conn.execute(delete(s.clients).where(s.clients.c.client_id == client_id))
            await conn.execute(delete(s.pending_authorizations).where(s.pending_authorizations.c.client_id == client_id))
        return grant_ids

    # Consent requests ------------------------------------------------------------------------

    async def add_pending(self, pending: PendingAuthorization, *, max_pending: int | None = None) -> int:
        table = s.pending_authorizations
        async with self._writing() as conn:
            evicted = 0
            if max_pending is not None:
                # Approved requests have a person at GitHub right now: they go only when nothing else can.
                evicted = await _evict_oldest(
                    conn,
                    table,
                    table.c.request_hash,
                    cap=max_pending,
                    among=None,
                    oldest_first=[table.c.upstream_state_hash.is_not(None), table.c.created_at],
                )
            await conn.execute(
                insert(s.pending_authorizations).values(**_columns(pending))
            )
        return evicted

    async def get_pending(self, request_hash: str) -> PendingAuthorization | None:
        table = s.pending_authorizations
        row = await self._read_one(select(table).where(table.c.request_hash == request_hash))
        return None if row is None else _pending(row)

    async def approve_pending(
        self, request_hash: str, *, upstream_state_hash: str, github_verifier_enc: str, expires_at: int
    ) -> bool:
        """Record the approval once: a second approval of the same request fails."""
        table = s.pending_authorizations
        async with self._writing() as conn:
            result = await conn.execute(
                update(table)
                .where(
                    table.c.request_hash == request_hash,
                    table.c.upstream_state_hash.is_(None),
                    table.c.expires_at > self._now(),
                )
                .values(
                    upstream_state_hash=upstream_state_hash,
                    github_verifier_enc=github_verifier_enc,
                    expires_at=expires_at,
                )
            )
        return result.rowcount == 1

    async def delete_pending(self, request_hash: str) -> bool:
        table = s.pending_authorizations
        async with self._writing() as conn:
            result = await conn.execute(delete(table).where(table.c.request_hash == request_hash))
        return result.rowcount == 1

    async def take_pending_by_state(self, upstream_state_hash: str) -> tuple[StateOutcome, PendingAuthorization | None]:
        """Single use: the first caller gets the approved request; later callers learn it was used.

        The row stays (without its PKCE verifier) until it expires, so that a replayed state can
        be told apart from a forged one.
        """
        table = s.pending_authorizations
        async with self._writing() as conn:
            row = (
                await conn.execute(select(table).where(table.c.upstream_state_hash == upstream_state_hash))
            ).first()
            if row is None:
                return "unknown", None
            result = await conn.execute(
                update(table)
                .where(table.c.request_hash == row.request_hash, table.c.consumed_at.is_(None))
                .values(consumed_at=self._now(), github_verifier_enc=None)
            )
            if result.rowcount != 1:
                return "used", None
        return "ok", _pending(row)

    # Grants ----------------------------------------------------------------------------------

    async def add_grant_with_code(self, grant: Grant, code: CodeRecord) -> None:
        async with self._writing() as conn:
            await conn.execute(
                insert(s.grants).values(**_columns(grant))
            )
            await conn.execute(
                insert(s.authorization_codes).values(**_columns(code))
            )
            await conn.execute(
                update(s.clients)
                .where(s.clients.c.client_id == grant.client_id, s.clients.c.used_at.is_(None))
                .values(used_at=grant.created_at)
            )

    async def get_grant(self, grant_id: str) -> Grant | None:
        row = await self._read_one(_GRANT_BY_ID, {"grant_id": grant_id})
        return None if row is None else _grant(row)

    async def list_grants(self, *, github_user_id: int | None = None) -> list[Grant]:
        query = select(s.grants).order_by(s.grants.c.created_at)
        if github_user_id is not None:
            query = query.where(s.grants.c.github_user_id == github_user_id)
        rows = await self._read(query)
        return [_grant(row) for row in rows]

    async def last_token_issued(self, grant_ids: Sequence[str]) -> dict[str, int]:
        """When each grant last got a token pair (from its code or a refresh): the time its client
        last signed in or refreshed. Refresh tokens are read because rotated ones are kept until
        they expire, while expired access tokens are purged."""
        if not grant_ids:
            return {}
        table = s.refresh_tokens
        query = (
            select(table.c.grant_id, func.max(table.c.created_at).label("last_issued"))
            .where(table.c.grant_id.in_(list(grant_ids)))
            .group_by(table.c.grant_id)
        )
        rows = await self._read(query)
        return {row.grant_id: int(row.last_issued) for row in rows}

    async def update_github_credentials(self, grant_id: str, credentials: GitHubCredentials) -> bool:
        async with self._writing() as conn:
            result = await conn.execute(
                update(s.grants)
                .where(s.grants.c.grant_id == grant_id)
                .values(
                    github_token_enc=credentials.token_enc,
                    github_token_expires_at=credentials.token_expires_at,
                    github_refresh_token_enc=credentials.refresh_token_enc,
                    github_refresh_expires_at=credentials.refresh_expires_at,
                    github_scopes=_join(credentials.scopes),
                    refresh_lease_until=None,
                )
            )
        return result.rowcount == 1

    async def acquire_refresh_lease(self, grant_id: str, *, until: int) -> bool:
        """Take the grant's refresh lease unless another process holds an unexpired one."""
        grants = s.grants
        async with self._writing() as conn:
            result = await conn.execute(
                update(grants)
                .where(
                    grants.c.grant_id == grant_id,
                    or_(grants.c.refresh_lease_until.is_(None), grants.c.refresh_lease_until <= self._now()),
                )
                .values(refresh_lease_until=until)
            )
        return result.rowcount == 1

    async def release_refresh_lease(self, grant_id: str) -> None:
        async with self._writing() as conn:
            await conn.execute(update(s.grants).where(s.grants.c.grant_id == grant_id).values(refresh_lease_until=None))

    async def delete_grant(self, grant_id: str) -> Grant | None:
        """Revoke: delete the grant and (cascade) its codes and tokens. Returns what was deleted."""
        async with self._writing() as conn:
            row = (await conn.execute(select(s.grants).where(s.grants.c.grant_id == grant_id))).first()
            if row is None:
                return None
            await _delete_grants(conn, [grant_id])
        return _grant(row)

    # Codes and tokens ------------------------------------------------------------------------

    async def get_code(self, code_hash: str) -> CodeRecord | None:
        table = s.authorization_codes
        row = await self._read_one(select(table).where(table.c.code_hash == code_hash))
        return None if row is None else _code(row)

    async def consume_code(self, code_hash: str, tokens: TokenPair, *, client_id: str) -> bool:
        """Mark the code used and store the tokens issued from it, atomically; False if already used."""
        table = s.authorization_codes
        async with self._writing() as conn:
            result = await conn.execute(
                update(table)
                .where(table.c.code_hash == code_hash, table.c.used_at.is_(None))
                .values(used_at=self._now())
                .returning(table.c.grant_id)
            )
            grant_id = result.scalar_one_or_none()
            if grant_id is None:
                return False
            await _insert_pair(conn, grant_id=grant_id, client_id=client_id, tokens=tokens, now=self._now())
        return True

    async def get_access_token(self, token_hash: str) -> AccessTokenRecord | None:
        row = await self._read_one(_ACCESS_TOKEN_BY_HASH, {"token_hash": token_hash})
        if row is None:
            return None
        return _record(AccessTokenRecord, row)

    async def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        table = s.refresh_tokens
        row = await self._read_one(select(table).where(table.c.token_hash == token_hash))
        if row is None:
            return None
        return _record(RefreshTokenRecord, row)

    async def rotate_refresh_token(self, token_hash: str, tokens: TokenPair) -> bool:
        """Retire the refresh token and issue its successor pair, atomically; False if already used.

        The grant's earlier access tokens are deleted with it: a grant has one live pair at a time.
        """
        table = s.refresh_tokens
        now = self._now()
        async with self._writing() as conn:
            result = await conn.execute(
                update(table)
                .where(table.c.token_hash == token_hash, table.c.rotated_at.is_(None), table.c.expires_at > now)
                .values(rotated_at=now)
                .returning(table.c.grant_id, table.c.client_id)
            )
            row = result.first()
            if row is None:
                return False
            await conn.execute(delete(s.access_tokens).where(s.access_tokens.c.grant_id == row.grant_id))
            await _insert_pair(conn, grant_id=row.grant_id, client_id=row.client_id, tokens=tokens, now=now)
        return True

    # Housekeeping ----------------------------------------------------------------------------

    async def take_expired_grants(self, *, limit: int) -> list[Grant]:
        """Delete up to `limit` expired grants (and what was issued from them); returns them, so
        that the caller can revoke their GitHub tokens."""
        grants = s.grants
        async with self._writing() as conn:
            rows = (
                await conn.execute(select(grants).where(grants.c.expires_at < self._now()).order_by(grants.c.expires_at).limit(limit))
            ).all()
            await _delete_grants(conn, [row.grant_id for row in rows])
        return [_grant(row) for row in rows]

    async def purge_expired(self) -> PurgeCounts:
        """Delete what can no longer be used, in small batches so traffic is never locked out."""
        now = self._now()
        counts: dict[str, int] = {}
        targets: Sequence[tuple[str, Any, Any]] = (
            ("pending_authorizations", s.pending_authorizations, s.pending_authorizations.c.expires_at < now),
            ("authorization_codes", s.authorization_codes, s.authorization_codes.c.expires_at < now),
            ("access_tokens", s.access_tokens, s.access_tokens.c.expires_at < now),
            ("refresh_tokens", s.refresh_tokens, s.refresh_tokens.c.expires_at < now),
            ("grants", s.grants, s.grants.c.expires_at < now),
            (
                "clients",
                s.clients,
                and_(s.clients.c.used_at.is_(None), s.clients.c.created_at < now - UNUSED_CLIENT_TTL),
            ),
        )
        for name, table, condition in targets:
            key = next(iter(table.primary_key.columns))
            total = 0
            while True:
                async with self._writing() as conn:
                    batch = select(key).where(condition).limit(_PURGE_BATCH).scalar_subquery()
                    result = await conn.execute(delete(table).where(key.in_(batch)))
                total += result.rowcount
                if result.rowcount < _PURGE_BATCH:
                    break
            counts[name] = total
        return PurgeCounts(**counts)


async def _evict_oldest(
    conn: AsyncConnection, table: Any, key: Any, *, cap: int, among: Any, oldest_first: list[Any]
) -> int:
    """Make room for one more row under `cap` (counting the rows matching `among`, or all) by
    deleting the first rows in `oldest_first` order; returns how many were deleted."""
    count_query = select(func.count()).select_from(table)
    if among is not None:
        count_query = count_query.where(among)
    excess = int(await conn.scalar(count_query) or 0) - cap + 1
    if excess <= 0:
        return 0
    victims = select(key).order_by(*oldest_first).limit(excess)
    if among is not None:
        victims = victims.where(among)
    result = await conn.execute(delete(table).where(key.in_(victims.scalar_subquery())))
    return int(result.rowcount)


async def _insert_pair(conn: AsyncConnection, *, grant_id: str, client_id: str, tokens: TokenPair, now: int) -> None:
    await conn.execute(
        insert(s.access_tokens).values(
            token_hash=tokens.access_hash,
            grant_id=grant_id,
            client_id=client_id,
            scopes=_join(tokens.scopes),
            resource=tokens.resource,
            created_at=now,
            expires_at=tokens.access_expires_at,
        )
    )
    await conn.execute(
        insert(s.refresh_tokens).values(
            token_hash=tokens.refresh_hash,
            grant_id=grant_id,
            client_id=client_id,
            scopes=_join(tokens.scopes if tokens.refresh_scopes is None else tokens.refresh_scopes),
            resource=tokens.resource,
            created_at=now,
            expires_at=tokens.refresh_expires_at,
            rotated_at=None,
        )
    )
    # The grant lives as long as its newest refresh token.
    await conn.execute(
        update(s.grants)
        .where(s.grants.c.grant_id == grant_id)
        .values(
            expires_at=case(
                (s.grants.c.expires_at < tokens.refresh_expires_at, tokens.refresh_expires_at),
                else_=s.grants.c.expires_at,
            )
        )
    )


async def _delete_grants(conn: AsyncConnection, grant_ids: list[str]) -> None:
    if not grant_ids:
        return
    # Explicit child deletes, so revocation does not depend on the database enforcing cascades.
    for table in (s.access_tokens, s.refresh_tokens, s.authorization_codes):
        await conn.execute(delete(table).where(table.c.grant_id.in_(grant_ids)))
    await conn.execute(delete(s.grants).where(s.grants.c.grant_id.in_(grant_ids)))


R = TypeVar("R")


def _record(cls: type[R], row: Row[Any] | Any, *, prefix: str = "", **given: Any) -> R:
    """A record from a row whose columns are named after the record's fields (with `prefix`);
    `scopes` columns hold space-separated scopes. Fields in `given`, or with no column, are not read."""
    columns = row._mapping
    values = dict(given)
    for field in fields(cls):  # type: ignore[arg-type]
        column = prefix + field.name
        if field.name not in values and column in columns:
            value = columns[column]
            values[field.name] = _scopes(value) if field.name == "scopes" else value
    return cls(**values)


def _columns(record: Any, *, prefix: str = "") -> dict[str, Any]:
    """A record's fields as column values: the inverse of `_record` (GitHub credentials are
    the grant's `github_*` columns)."""
    values: dict[str, Any] = {}
    for field in fields(record):
        value = getattr(record, field.name)
        if isinstance(value, GitHubCredentials):
            values.update(_columns(value, prefix="github_"))
        else:
            values[prefix + field.name] = _join(value) if field.name == "scopes" else value
    return values


def _client(row: Row[Any]) -> ClientRecord:
    return _record(ClientRecord, row, info=dict(row.info))


def _pending(row: Row[Any]) -> PendingAuthorization:
    return _record(PendingAuthorization, row)


def _grant(row: Row[Any]) -> Grant:
    return _record(Grant, row, github=_record(GitHubCredentials, row, prefix="github_"))


def _code(row: Row[Any]) -> CodeRecord:
    return _record(CodeRecord, row)
