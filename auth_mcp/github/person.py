"""GitHub on behalf of one person: the grant behind the MCP token that is calling a tool.

It owns what a grant's GitHub token goes through:
- expiring tokens (GitHub App user tokens, OAuth Apps with expiring tokens) are refreshed
  shortly before they expire and once on a 401;
- GitHub's refresh tokens are single-use and a refresh kills the previous access token at once,
  so refreshes of one grant are serialised across processes by a lease in the database
  (grants.refresh_lease_until): one process refreshes, the others wait for its result;
- a 401 that a refresh cannot cure, or a refresh GitHub refuses, means the grant is dead: its
  MCP tokens are revoked (the client's next request gets 401 and it logs in again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from auth_mcp.clock import Clock
from auth_mcp.crypto import DecryptionError, Keyring
from auth_mcp.github.client import GitHub
from auth_mcp.github.models import (
    GitHubError,
    GitHubNotFound,
    GitHubOAuthError,
    GitHubTokens,
    GitHubUnauthorized,
    GitHubUnavailable,
    OrgMembership,
)
from auth_mcp.storage.records import GitHubCredentials, Grant
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

REFRESH_AHEAD = 300  # refresh tokens expiring within 5 minutes before using them
LEASE_SECONDS = 30  # longest a refresh may hold the lease (GitHub's call is bounded by its timeout)
_WAIT_STEP = 0.1  # how often a waiting process looks for the lease holder's result


class GrantEnder(Protocol):
    """Ends a grant whose GitHub authorization is gone (the authorization server's revoker).

    Guarantees: when `revoke_grant` returns, the grant's MCP tokens are refused in this process.
    It does not contact GitHub when `at_github` is false.
    """

    async def revoke_grant(self, grant_id: str, *, reason: str, at_github: bool) -> object: ...


class GrantEnded(GitHubError):
    """The person's GitHub authorization is gone; their MCP tokens were revoked."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Your GitHub authorization is no longer valid ({why}). Sign in again to continue.")


class PersonGitHub:
    """GitHub as the person behind one grant.

    One instance may serve many calls: tools/kit.py keeps one per verified MCP token, for as long
    as the token verifier keeps that token (it drops it when the grant is revoked, here or in
    another process, and reads it again from the database within `max_age`, 30 s, regardless). The instance
    keeps the grant it read and the token it decrypted, so a call GitHub answers 304 touches
    neither the database nor the cipher. That is safe because what it keeps can only go stale in
    two ways, and both are caught:
    - the grant's GitHub token was refreshed elsewhere: a refresh kills the old token at GitHub
      at once, so GitHub answers 401 to it, and a 401 always reads the grant again (below);
    - the token's expiry is an absolute time, checked against the clock on every call.
    """

    def __init__(
        self, *, grant_id: str, store: Store, keyring: Keyring, github: GitHub, revoker: GrantEnder, clock: Clock
    ) -> None:
        self._grant_id = grant_id
        self._store = store
        self._keyring = keyring
        self._github = github
        self._revoker = revoker
        self._clock = clock
        self._grant: Grant | None = None  # as last read (or written, after a refresh); None: read it
        self._opened: tuple[str, str] | None = None  # (ciphertext, plaintext) of the token last decrypted

    async def get(self, path: str) -> Any:
        """GET a REST path as this person (conditional, so repeats cost a 304)."""
        return await self._as_person(lambda token, person: self._github.get_json(token, path, person=person))

    async def get_model(self, path: str, model: type[M]) -> M:
        """GET a REST path as this person, parsed into `model`; a 304 reuses the model parsed before
        (shared between calls of this person: copy it before changing it). A body that does not
        fit `model` is a `GitHubUnavailable`."""
        return await self._as_person(lambda token, person: self._github.get_model(token, path, model, person=person))

    async def _as_person(self, call: Callable[[str, str], Awaitable[T]]) -> T:
        grant = self._grant or await self._load()
        person = str(grant.github_user_id)  # GitHub's rate limit is the person's, across their grants
        token = await self._usable_token(grant)
        try:
            return await call(token, person)
        except GitHubUnauthorized:
            pass
        # The grant as it is now, not as it was kept: another process may have refreshed its
        # token (which killed ours at GitHub), or ended it.
        current = await self._load()
        if current.github.token_enc == grant.github.token_enc and current.github.refresh_token_enc is None:
            await self._end("GitHub no longer accepts the token: the app was revoked or the token replaced")
        # Perhaps it expired early, or another process refreshed it: refresh (or pick up theirs) once.
        token = await self._refreshed_token(grant)
        try:
            return await call(token, person)
        except GitHubUnauthorized:
            await self._end("GitHub no longer accepts the token, even after refreshing it")
            raise  # unreachable: _end raises

    async def access_token(self) -> str:
        """The person's GitHub token, refreshed first if it is about to expire (for an upstream
        that acts on GitHub itself, by the operator's explicit choice)."""
        return await self._usable_token(await self._load())

    async def org_membership(self, org: str) -> OrgMembership | None:
        """The person's membership of `org`, or None if they are not a member."""
        try:
            body = await self.get(f"/user/memberships/orgs/{quote(org, safe='')}")
        except GitHubNotFound:
            return None
        return OrgMembership.model_validate(body)

    async def _load(self) -> Grant:
        grant = await self._store.get_grant(self._grant_id)
        if grant is None:
            self._grant = self._opened = None
            raise GrantEnded("it was revoked")
        self._grant = grant
        return grant

    def _decrypt(self, value: str) -> str:
        opened = self._opened
        if opened is not None and opened[0] == value:
            return opened[1]
        try:
            plaintext = self._keyring.decrypt(value)
        except DecryptionError:
            raise GitHubError("This server can no longer read your GitHub token after a key change; sign in again") from None
        self._opened = (value, plaintext)
        return plaintext

    async def _usable_token(self, grant: Grant) -> str:
        expires_at = grant.github.token_expires_at
        if expires_at is not None and expires_at - REFRESH_AHEAD <= self._clock.now():
            if grant.github.refresh_token_enc is None:
                await self._end("the GitHub token expired and cannot be refreshed")
            return await self._refreshed_token(grant)
        return self._decrypt(grant.github.token_enc)

    async def _refreshed_token(self, seen: Grant) -> str:
        """A token newer than the one in `seen`: refreshed here, or by whoever holds the lease."""
        # A holder that died leaves a lease that expires after LEASE_SECONDS: wait a little longer.
        deadline = self._clock.now() + LEASE_SECONDS + 1
        while self._clock.now() < deadline:
            current = await self._load()
            if current.github.token_enc != seen.github.token_enc:
                return self._decrypt(current.github.token_enc)  # refreshed by someone else meanwhile
            if await self._store.acquire_refresh_lease(self._grant_id, until=int(self._clock.now()) + LEASE_SECONDS):
                try:
                    return await self._refresh_holding_lease(seen)
                finally:
                    await self._store.release_refresh_lease(self._grant_id)
            await self._clock.sleep(_WAIT_STEP)
        raise GitHubUnavailable("another server process is still refreshing your GitHub token; try again shortly")

    async def _refresh_holding_lease(self, seen: Grant) -> str:
        current = await self._load()
        if current.github.token_enc != seen.github.token_enc:
            return self._decrypt(current.github.token_enc)
        if current.github.refresh_token_enc is None:
            await self._end("the GitHub token cannot be refreshed")
        refresh_token = self._decrypt(current.github.refresh_token_enc or "")
        if current.github.refresh_expires_at is not None and current.github.refresh_expires_at <= self._clock.now():
            await self._end("GitHub's refresh token expired")
        try:
            # Finish well within the lease, so no other process can start a second refresh of
            # this single-use token while this one is still in flight.
            async with asyncio.timeout(LEASE_SECONDS - 10):
                fresh = await self._github.refresh(refresh_token)
        except TimeoutError:
            raise GitHubUnavailable("GitHub did not refresh the token in time; try again") from None
        except GitHubOAuthError as exc:
            await self._end(f"GitHub refused to refresh it: {exc.error}")
            raise  # unreachable
        credentials = sealed_credentials(fresh, keyring=self._keyring, now=int(self._clock.now()))
        await self._store.update_github_credentials(self._grant_id, credentials)
        logger.info("refreshed the GitHub token of grant %s", self._grant_id[:8])
        token = fresh.access_token.get_secret_value()
        self._grant, self._opened = replace(current, github=credentials), (credentials.token_enc, token)
        return token

    async def _end(self, why: str) -> None:
        self._grant = self._opened = None
        # GitHub already dropped the token (or we cannot use it): no point revoking it there.
        await self._revoker.revoke_grant(self._grant_id, reason=why, at_github=False)
        raise GrantEnded(why)


def sealed_credentials(fresh: GitHubTokens, *, keyring: Keyring, now: int) -> GitHubCredentials:
    """What a grant stores of GitHub's tokens: encrypted, with absolute expiry times."""
    refresh = fresh.refresh_token
    refresh_lifetime = fresh.refresh_token_expires_in
    return GitHubCredentials(
        token_enc=keyring.encrypt(fresh.access_token.get_secret_value()),
        token_expires_at=now + fresh.expires_in if fresh.expires_in else None,
        refresh_token_enc=keyring.encrypt(refresh.get_secret_value()) if refresh else None,
        refresh_expires_at=now + refresh_lifetime if refresh and refresh_lifetime else None,
        scopes=fresh.scopes,
    )
