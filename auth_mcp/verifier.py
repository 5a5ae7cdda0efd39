"""Verifying MCP access tokens: local, fast, and never stale about revocation in this process.

Verification never calls GitHub: the person's identity was captured at login and lives in the
grant. The hot path is an in-process cache keyed by the token's hash. Correctness rules:
- a token revoked or rotated through this process is dropped from the cache before the
  revoking call returns (`forget_grant`), so this process never accepts it again;
- other processes learn of revocations through `forget_grant` being called by the revocation
  listener (storage/notifications.py) and, as a fallback, entries live at most `max_age`
  seconds before the database is asked again;
- expiry is checked on every call against the clock, cached or not;
- only positive results are cached, so a flood of garbage tokens cannot fill the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mcp.server.auth.provider import AccessToken

from auth_mcp.clock import Clock
from auth_mcp.storage.records import AccessTokenRecord
from auth_mcp.storage.store import Store
from auth_mcp.tokens import token_hash


class McpAccessToken(AccessToken):
    """The SDK's access token, plus who it is: the grant and the person behind it."""

    grant_id: str
    github_user_id: int
    github_login: str
    client_name: str | None = None


class CachedVerifier:
    """`mcp.server.auth.provider.TokenVerifier` over the store, with a revocation-aware cache."""

    def __init__(self, *, store: Store, clock: Clock, issuer: str, max_age: float = 30.0, max_entries: int = 100_000) -> None:
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._max_age = max_age
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[AccessTokenRecord, float]] = OrderedDict()
        self._by_grant: dict[str, set[str]] = {}
        # Bumped by every forget: a database read that overlapped a revocation is not cached.
        self._generation = 0

    async def verify_token(self, token: str) -> McpAccessToken | None:
        digest = token_hash(token)
        now = self._clock.now()
        cached = self._entries.get(digest)
        if cached is not None and now - cached[1] < self._max_age:
            record = cached[0]
        else:
            generation = self._generation
            record = await self._store.get_access_token(digest)
            if record is None:
                self._drop(digest)
                return None
            if generation == self._generation:
                self._remember(record, now)
        if record.expires_at <= now:
            return None
        return self._to_access_token(token, record)

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

    def _remember(self, record: AccessTokenRecord, now: float) -> None:
        self._entries[record.token_hash] = (record, now)
        self._entries.move_to_end(record.token_hash)
        self._by_grant.setdefault(record.grant_id, set()).add(record.token_hash)
        while len(self._entries) > self._max_entries:
            digest, (old, _) = self._entries.popitem(last=False)
            self._unlink(old.grant_id, digest)

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            self._unlink(entry[0].grant_id, digest)

    def _unlink(self, grant_id: str, digest: str) -> None:
        members = self._by_grant.get(grant_id)
        if members is not None:
            members.discard(digest)
            if not members:
                del self._by_grant[grant_id]

    def _to_access_token(self, token: str, record: AccessTokenRecord) -> McpAccessToken:
        claims: dict[str, Any] = {"iss": self._issuer}
        return McpAccessToken(
            token=token,
            client_id=record.client_id,
            scopes=list(record.scopes),
            expires_at=record.expires_at,
            resource=record.resource,
            subject=str(record.github_user_id),
            claims=claims,
            grant_id=record.grant_id,
            github_user_id=record.github_user_id,
            github_login=record.github_login,
            client_name=record.client_name,
        )
