"""The verification cache: bounded, revocation-aware, never serving what it should not."""

from __future__ import annotations

import asyncio
from typing import Any

from auth_mcp.resource.verifier import CachedVerifier
from tests.support.oauth import call_tool, login
from tests.support.server import InProcess, in_process


async def test_cache_entries_older_than_their_lifetime_are_dropped_not_hoarded(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        verifier = env.services.verifier
        tokens = []
        for name in ("a", "b", "c"):
            _, issued = await login(env, login=name)
            tokens.append(issued.access_token)
            assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        assert verifier.cached == 3
        env.clock.advance(31)
        _, fresh = await login(env, login="d")
        assert (await call_tool(env, fresh.access_token, "whoami")).status_code == 200
        assert verifier.cached == 1
        # The dropped ones still verify: from the database again.
        assert (await call_tool(env, tokens[0], "whoami")).status_code == 200


# The six invariants in verifier.py's docstring, one test each ----------------------------------


class CountingStore:
    """The real store, counting token reads and optionally holding each one at a gate (the
    `Store` protocol is the seam; every other method goes to the real store)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.read_done = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_access_token(self, digest: str) -> Any:
        self.reads += 1
        record = await self._store.get_access_token(digest)
        self.read_done.set()
        if self.gate is not None:
            await self.gate.wait()
        return record


def own_verifier(env: InProcess, **options: Any) -> tuple[CachedVerifier, CountingStore]:
    store = CountingStore(env.services.store)
    return CachedVerifier(store=store, clock=env.clock, issuer=env.issuer, **options), store


async def test_a_token_revoked_here_is_refused_as_soon_as_the_revocation_returns(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        verifier = env.services.verifier
        verified = await verifier.verify(issued.access_token)
        assert verified is not None  # now cached
        await env.services.revoker.revoke_grant(verified.token.grant_id, reason="test", at_github=False)
        assert await verifier.verify(issued.access_token) is None


async def test_a_revocation_elsewhere_is_seen_through_forget_grant_or_at_the_latest_after_max_age(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, first = await login(env, login="ann")
        _, second = await login(env, login="ben")
        verifier, _ = own_verifier(env, max_age=30)  # another process's cache
        one = await verifier.verify(first.access_token)
        two = await verifier.verify(second.access_token)
        assert one is not None and two is not None
        # Another process revokes both grants in the database.
        await env.services.store.delete_grant(one.token.grant_id)
        await env.services.store.delete_grant(two.token.grant_id)
        verifier.forget_grant(one.token.grant_id)  # its notice arrived
        assert await verifier.verify(first.access_token) is None
        assert await verifier.verify(second.access_token) is not None  # notice lost: stale until max_age
        env.clock.advance(30)
        assert await verifier.verify(second.access_token) is None


async def test_a_read_that_overlapped_a_revocation_is_not_cached(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        verifier, store = own_verifier(env)
        store.gate = asyncio.Event()
        reading = asyncio.create_task(verifier.verify(issued.access_token))
        await store.read_done.wait()  # the row was read; the revocation lands before the read returns
        grant_id = (await env.services.store.list_grants())[0].grant_id
        await env.services.store.delete_grant(grant_id)
        verifier.forget_grant(grant_id)
        store.gate.set()
        await reading
        store.gate = None
        assert await verifier.verify(issued.access_token) is None
        assert store.reads == 2


async def test_expiry_is_checked_on_every_call_cached_or_not(db_url: str) -> None:
    async with in_process(database_url=db_url, access_token_ttl=60) as env:
        _, issued = await login(env)
        verifier, store = own_verifier(env, max_age=30)
        env.clock.advance(50)
        assert await verifier.verify(issued.access_token) is not None  # read at 50 s, cached
        env.clock.advance(11)  # 61 s: past expiry, yet only 11 s after the read
        assert await verifier.verify(issued.access_token) is None
        assert store.reads == 1  # refused from the cache, by the clock


async def test_concurrent_misses_for_one_token_share_one_read(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        verifier, store = own_verifier(env)
        store.gate = asyncio.Event()
        calls = [asyncio.create_task(verifier.verify(issued.access_token)) for _ in range(20)]
        await store.read_done.wait()
        store.gate.set()
        results = await asyncio.gather(*calls)
        assert all(result is not None for result in results)
        assert store.reads == 1


async def test_unknown_tokens_are_remembered_briefly_and_boundedly(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        verifier, store = own_verifier(env, max_age=30, max_unknown=2)
        assert await verifier.verify("amcp_at_unknown-a") is None
        assert await verifier.verify("amcp_at_unknown-a") is None
        assert store.reads == 1  # remembered
        env.clock.advance(30)
        assert await verifier.verify("amcp_at_unknown-a") is None
        assert store.reads == 2  # briefly
        await verifier.verify("amcp_at_unknown-b")
        await verifier.verify("amcp_at_unknown-c")  # the bound pushes out the oldest, a
        reads = store.reads
        assert await verifier.verify("amcp_at_unknown-a") is None
        assert store.reads == reads + 1


async def test_the_hot_path_answer_is_only_ever_a_fresh_unexpired_unrevoked_cached_one(db_url: str) -> None:
    """`fresh()` answers the bearer guard without a query: never for a token not cached, past
    the cache's lifetime, past the token's expiry, or of a grant forgotten by a revocation."""
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="ann")
        verifier, store = own_verifier(env, max_age=30)
        token = issued.access_token
        assert verifier.fresh(token) is None and store.reads == 0  # not cached: no query either
        verified = await verifier.verify(token)
        assert verified is not None and verifier.fresh(token) is verified
        verifier.forget_grant(verified.token.grant_id)  # a revocation notice
        assert verifier.fresh(token) is None
        assert await verifier.verify(token) is not None  # cached again
        env.clock.advance(31)  # past the cache's lifetime
        assert verifier.fresh(token) is None
        verified = await verifier.verify(token)
        assert verified is not None and verified.token.expires_at is not None
        env.clock.advance(verified.token.expires_at - env.clock.now())  # its expiry, within the cache's lifetime
        assert verifier.fresh(token) is None and await verifier.verify(token) is None
