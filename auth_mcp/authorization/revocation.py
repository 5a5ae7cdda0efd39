"""Ending a grant: its MCP tokens stop working everywhere, and (on logout) GitHub forgets its token.

The one place grants die, whatever the cause: the client revoked a token (RFC 7009), a code or
refresh token was replayed, GitHub stopped accepting the person's token, the person left an
allowed organisation, or an operator revoked them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from auth_mcp.crypto import DecryptionError, Keyring
from auth_mcp.github.client import GitHub
from auth_mcp.github.models import GitHubError
from auth_mcp.storage.records import Grant
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)

Announce = Callable[[str], Awaitable[None]]
"""Tells the other replicas that a grant is gone (storage/notifications.py); a no-op alone."""


async def _announce_nowhere(_grant_id: str) -> None:
    return None


class TokenCache(Protocol):
    """Where this process remembers verified tokens (resource/verifier.py's CachedVerifier)."""

    def forget_grant(self, grant_id: str) -> None:
        """Drop every remembered token of the grant, before the revoking call returns."""


class Revoker:
    def __init__(
        self,
        *,
        store: Store,
        verifier: TokenCache,
        github: GitHub,
        keyring: Keyring,
        revoke_at_github: bool,
        announce: Announce = _announce_nowhere,
        on_revoked: Callable[[str], None] = lambda _grant_id: None,
    ) -> None:
        self._store = store
        self._verifier = verifier
        self._github = github
        self._keyring = keyring
        self._revoke_at_github = revoke_at_github
        self.announce = announce
        self._on_revoked = on_revoked  # e.g. close the grant's open streams (resource/sse_sessions.py)

    async def revoke_grant(self, grant_id: str, *, reason: str, at_github: bool) -> Grant | None:
        """Delete the grant and everything issued from it; returns it, or None if already gone.

        When this returns, this process refuses the grant's tokens; other processes refuse
        them as soon as the announcement reaches them (and at the latest when their cache
        entries age out).
        """
        grant = await self._store.delete_grant(grant_id)
        self._verifier.forget_grant(grant_id)
        self._on_revoked(grant_id)
        await self.announce(grant_id)
        if grant is None:
            return None
        logger.info(
            "grant %s of GitHub user %s (%s) for client %s revoked: %s",
            grant_id[:8],
            grant.github_user_id,
            grant.github_login,
            grant.client_id,
            reason,
        )
        if at_github and self._revoke_at_github:
            await self.revoke_github_token(grant)
        return grant

    async def revoke_github_token_of_expired(self, grant: Grant) -> None:
        """An expired grant is gone here: its GitHub token goes too, unless that is turned off."""
        if self._revoke_at_github:
            await self.revoke_github_token(grant)

    async def revoke_github_token(self, grant: Grant) -> None:
        """Best effort: a failure is logged, never raised, because the grant is already gone here."""
        try:
            token = self._keyring.decrypt(grant.github.token_enc)
        except DecryptionError:
            logger.warning("cannot revoke grant %s at GitHub: its token was encrypted with a retired key", grant.grant_id[:8])
            return
        try:
            await self._github.revoke_token(token)
        except GitHubError as exc:
            logger.warning("GitHub did not revoke the token of grant %s: %s", grant.grant_id[:8], exc)
