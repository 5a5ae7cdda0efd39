"""Failed bearer checks cost an attacker, not the database: a per-address budget on /mcp."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_mcp.resource.verifier import CachedVerifier
from auth_mcp.storage.store import SqlStore
from tests.support.clock import FakeClock
from tests.support.oauth import login, mcp_call
from tests.support.server import InProcess, in_process


def client_from(env: InProcess, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app, client=(address, 5000)), base_url=env.issuer)


async def whoami(http: httpx.AsyncClient, token: str) -> httpx.Response:
    headers, body = mcp_call("whoami")
    return await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})


@contextlib.contextmanager
def counting_queries(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the database is sent while the block runs."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_random_tokens_from_one_address_exhaust_its_budget_then_get_429_without_a_query(db_url: str) -> None:
    async with in_process(database_url=db_url, rate_limit_per_minute=6) as env:
        _, issued = await login(env)
        attacker, neighbour = client_from(env, "203.0.113.9"), client_from(env, "198.51.100.4")
        assert (await whoami(attacker, issued.access_token)).status_code == 200  # now cached
        for _ in range(6):
            assert (await whoami(attacker, "amcp_at_" + secrets.token_urlsafe(32))).status_code == 401
        with counting_queries(env.services.store.engine) as statements:
            for _ in range(50):
                refused = await whoami(attacker, "amcp_at_" + secrets.token_urlsafe(32))
                assert refused.status_code == 429
        assert statements == []  # the exhausted budget costs the database nothing
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "temporarily_unavailable"
        # A good token from the same address still works; other addresses are untouched.
        assert (await whoami(attacker, issued.access_token)).status_code == 200
        assert (await whoami(neighbour, "amcp_at_" + secrets.token_urlsafe(32))).status_code == 401
        assert (await whoami(neighbour, issued.access_token)).status_code == 200
        # Past the verification cache's lifetime the good token needs a query again: it was seen
        # valid, so the exhausted budget does not hold it back.
        env.clock.advance(31)
        statuses = [(await whoami(attacker, "amcp_at_" + secrets.token_urlsafe(32))).status_code for _ in range(6)]
        assert statuses[-1] == 429
        assert (await whoami(attacker, issued.access_token)).status_code == 200
        # The budget refills with time (injected clock: 60 s refill the whole minute's budget).
        env.clock.advance(60)
        assert (await whoami(attacker, "amcp_at_" + secrets.token_urlsafe(32))).status_code == 401


async def test_good_tokens_do_not_spend_the_failure_budget(db_url: str) -> None:
    async with in_process(database_url=db_url, rate_limit_per_minute=3) as env:
        _, issued = await login(env)
        caller = client_from(env, "203.0.113.10")
        for _ in range(20):
            env.clock.advance(31)  # past the verification cache's lifetime: each call reads the database
            assert (await whoami(caller, issued.access_token)).status_code == 200


async def test_no_budget_when_rate_limits_are_off(db_url: str) -> None:
    async with in_process(database_url=db_url, rate_limit_per_minute=0) as env:
        caller = client_from(env, "203.0.113.11")
        for _ in range(30):
            assert (await whoami(caller, "amcp_at_" + secrets.token_urlsafe(32))).status_code == 401


async def test_a_flood_of_unknown_tokens_cannot_evict_cached_good_tokens(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        store: SqlStore = env.services.store
        clock = FakeClock()
        verifier = CachedVerifier(store=store, clock=clock, issuer=env.issuer, max_entries=4, max_unknown=8)
        assert await verifier.verify(issued.access_token) is not None
        for _ in range(200):  # 25 times the negative cache's bound
            assert await verifier.verify("amcp_at_" + secrets.token_urlsafe(32)) is None
        with counting_queries(store.engine) as statements:
            assert await verifier.verify(issued.access_token) is not None
        assert statements == []  # still served from the cache
        assert verifier.cached == 1
