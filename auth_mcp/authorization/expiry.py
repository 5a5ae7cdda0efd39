"""The periodic sweep of what can no longer be used, with its consequences outside the database.

An expired grant (its last refresh token lapsed) is deleted, and its GitHub token revoked at
GitHub unless AUTH_MCP_REVOKE_GITHUB_TOKENS is off: OAuth App tokens never expire, and once we
delete the grant nobody could ever use or revoke that token again, yet it would stay valid at
GitHub (and count towards GitHub's ten tokens per person and app). A GitHub token that has
itself expired is left alone. Then codes, tokens, pending authorizations and unused
registrations past their time go, and SQLite gives the freed pages back (storage/compaction.py).
"""

from __future__ import annotations

import dataclasses
import logging

from auth_mcp.authorization.revocation import Revoker
from auth_mcp.clock import Clock
from auth_mcp.storage.compaction import reclaim_space
from auth_mcp.storage.records import PurgeCounts
from auth_mcp.storage.store import SqlStore

logger = logging.getLogger(__name__)

_GRANT_BATCH = 100


class Purger:
    def __init__(self, *, store: SqlStore, revoker: Revoker, clock: Clock) -> None:
        self._store = store
        self._revoker = revoker
        self._clock = clock

    async def run_once(self) -> PurgeCounts:
        """One sweep; returns what was deleted."""
        grants = 0
        while True:
            expired = await self._store.take_expired_grants(limit=_GRANT_BATCH)
            for grant in expired:
                github_expiry = grant.github.token_expires_at
                if github_expiry is None or github_expiry > self._clock.now():
                    await self._revoker.revoke_github_token_of_expired(grant)
            grants += len(expired)
            if len(expired) < _GRANT_BATCH:
                break
        counts = await self._store.purge_expired()
        counts = dataclasses.replace(counts, grants=counts.grants + grants)
        if counts.total:
            reclaimed = await reclaim_space(self._store.engine)
            if reclaimed is not None and reclaimed.pages_after < reclaimed.pages_before:
                logger.info("database file shrank from %d to %d pages", reclaimed.pages_before, reclaimed.pages_after)
        return counts
