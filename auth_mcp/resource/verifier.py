"""Verifying MCP access tokens: local, fast, and never stale about revocation in this process.

Verification never calls GitHub: the person's identity was captured at login and lives in the
grant. The hot path is an in-process cache keyed by the token's hash. Correctness rules:
- a token revoked or rotated through this process is dropped from the cache before the
  revoking call returns (`forget_grant`), so this process never accepts it again;
- other processes learn of revocations through `forget_grant` being called by the revocation
  listener (storage/notifications.py) and, as a fallback, entries live at most `max_age`
  seconds before the database is asked again;
- a database read that overlapped a revocation is not cached (the generation counter);
- expiry is checked on every call against the clock, cached or not;
- concurrent misses for one token share one database read, so a cache expiry under load is
  one query, not a stampede;
- unknown tokens are remembered briefly (negative entries, bounded), so a client hammering
  with one bad token costs one query per `max_age`. A token cannot become valid later: tokens
  are random and reach clients only after they are stored. Negative entries live in their own
  bounded structure: a flood of random tokens evicts only other negative entries, never a
  valid token's (random tokens each costing a query are what the bearer guard's per-address
  failure budget is for).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from pydantic import Field
from starlette.authentication import AuthCredentials

from auth_mcp.clock import Clock
from auth_mcp.storage.records import AccessTokenRecord
from auth_mcp.storage.store import Store
from auth_mcp.tokens import token_hash

T = TypeVar("T")


class McpAccessToken(AccessToken):
    """The SDK's access token, plus who it is: the grant and the person behind it.

    One instance serves every request of a token while it is cached, so answers that depend on
    the token alone (`whoami`) are computed once and kept in `answers`.
    """

    grant_id: str
    github_user_id: int
    github_login: str
    client_name: str | None = None
    # A field, not a pydantic private attribute: those are read through __getattr__ (~1.4 µs).
    answers: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    def answer(self, key: str, build: Callable[[McpAccessToken], T]) -> T:
        """`build(self)`, computed once per instance (the token's fields never change)."""
        answers = self.answers
        if key not in answers:
            answers[key] = build(self)
        return answers[key]


@dataclass(frozen=True, slots=True)
class Verified:
    """What the resource server puts in a request's scope, built once per cached token."""

    token: McpAccessToken
    user: AuthenticatedUser
    credentials: AuthCredentials
    scopes: frozenset[str]  # the token's scopes, for the per-request scope checks


@dataclass(frozen=True, slots=True)
class _Entry:
    verified: Verified
    fetched_at: float


class CachedVerifier:
    """`mcp.server.auth.provider.TokenVerifier` over the store, with a revocation-aware cache."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        issuer: str,
        max_age: float = 30.0,
        max_entries: int = 100_000,
        max_unknown: int = 10_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._max_age = max_age
        self._max_entries = max_entries
        self._max_unknown = max_unknown
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._by_grant: dict[str, set[str]] = {}
        # Tokens seen valid, until they expire (bounded like the cache): checking one again is its
        # holder's work, not a guess, so the bearer guard's failure budget lets it through.
        self._vouched: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, tuple[int, asyncio.Future[Verified | None]]] = {}
        # Bumped by every forget: a database read that overlapped a revocation is not cached.
        self._generation = 0

    @property
    def cached(self) -> int:
        """How many tokens are cached now (for metrics and tests)."""
        return len(self._entries)

    def knows(self, token: str) -> bool:
        """Whether `token` was valid when last verified and has not expired since (it may have
        been revoked meanwhile: verification still decides). Random guesses are never known."""
        digest = token_hash(token)
        expires_at = self._vouched.get(digest)
        return expires_at is not None and expires_at > self._clock.now()

    async def verify_token(self, token: str) -> McpAccessToken | None:
        """The SDK's `TokenVerifier` protocol."""
        verified = await self.verify(token)
        return None if verified is None else verified.token

    def fresh(self, token: str) -> Verified | None:
        """The cached answer for `token` when it is fresh and the token has not expired; None
        otherwise, without a database query (`verify` then decides). The bearer guard's hot path:
        a token in use is answered here, with no coroutine and no failure-budget check."""
        now = self._clock.now()
        return _unexpired(self._cached(token_hash(token), now), now)

    async def verify(self, token: str) -> Verified | None:
        digest = token_hash(token)
        now = self._clock.now()
        verified = self._cached(digest, now)
        if verified is None:
            unknown_since = self._unknown.get(digest)
            if unknown_since is not None and now - unknown_since < self._max_age:
                return None
            verified = await self._load(token, digest, now)
        return _unexpired(verified, now)

    def _cached(self, digest: str, now: float) -> Verified | None:
        """The cache's answer, if it has one younger than `max_age`."""
        entry = self._entries.get(digest)
        return entry.verified if entry is not None and now - entry.fetched_at < self._max_age else None

    async def _load(self, token: str, digest: str, now: float) -> Verified | None:
        pending = self._inflight.get(digest)
        if pending is not None and pending[0] == self._generation:
            # Share a read only if no revocation happened since it started.
            return await asyncio.shield(pending[1])
        future: asyncio.Future[Verified | None] = asyncio.get_running_loop().create_future()
        generation = self._generation
        self._inflight[digest] = (generation, future)
        try:
            record = await self._store.get_access_token(digest)
            verified = None if record is None else self._verified(token, record)
            if generation == self._generation:
                self._remember(digest, verified, now)
            future.set_result(verified)
            return verified
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited future logs nothing
            raise
        finally:
            if self._inflight.get(digest, (None, None))[1] is future:
                del self._inflight[digest]

    def forget_grant(self, grant_id: str) -> None:
        """Drop every cached token of a grant (it was revoked, or its tokens rotated)."""
        self._generation += 1
        for digest in self._by_grant.pop(grant_id, set()):
            self._entries.pop(digest, None)

    def forget_all(self) -> None:
        """Used when revocation notices may have been missed (a lost listener connection)."""
        self._generation += 1
        self._entries.clear()
        self._by_grant.clear()

    def _remember(self, digest: str, verified: Verified | None, now: float) -> None:
        if verified is None:
            self._drop(digest)
            self._vouched.pop(digest, None)
            self._unknown[digest] = now
            self._unknown.move_to_end(digest)
            while self._unknown:
                oldest = next(iter(self._unknown.values()))
                if len(self._unknown) <= self._max_unknown and now - oldest < self._max_age:
                    break
                self._unknown.popitem(last=False)
            return
        self._entries[digest] = _Entry(verified, now)
        self._entries.move_to_end(digest)
        self._vouched[digest] = verified.token.expires_at or now + self._max_age
        self._vouched.move_to_end(digest)
        if len(self._vouched) > self._max_entries:
            self._vouched.popitem(last=False)
        self._by_grant.setdefault(verified.token.grant_id, set()).add(digest)
        # Entries are kept in fetch order; those older than max_age would be re-read anyway, so
        # they go now instead of accumulating up to max_entries (the soak benchmark's finding).
        while self._entries:
            old_digest, old = next(iter(self._entries.items()))
            if len(self._entries) <= self._max_entries and now - old.fetched_at < self._max_age:
                break
            del self._entries[old_digest]
            self._unlink(old.verified.token.grant_id, old_digest)

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            self._unlink(entry.verified.token.grant_id, digest)

    def _unlink(self, grant_id: str, digest: str) -> None:
        members = self._by_grant.get(grant_id)
        if members is not None:
            members.discard(digest)
            if not members:
                del self._by_grant[grant_id]

    def _verified(self, token: str, record: AccessTokenRecord) -> Verified:
        access = McpAccessToken(
            token=token,
            client_id=record.client_id,
            scopes=list(record.scopes),
            expires_at=record.expires_at,
            resource=record.resource,
            subject=str(record.github_user_id),
            claims={"iss": self._issuer},
            grant_id=record.grant_id,
            github_user_id=record.github_user_id,
            github_login=record.github_login,
            client_name=record.client_name,
        )
        return Verified(
            token=access,
            user=AuthenticatedUser(access),
            credentials=AuthCredentials(access.scopes),
            scopes=frozenset(access.scopes),
        )


def _unexpired(verified: Verified | None, now: float) -> Verified | None:
    if verified is None:
        return None
    expires_at = verified.token.expires_at
    return None if expires_at is not None and expires_at <= now else verified
