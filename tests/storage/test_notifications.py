"""A revocation on one replica reaches the others' verification caches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from tests.support.clock import FakeClock
from tests.support.oauth import call_tool, login
from tests.support.server import InProcess, in_process

SHARED = {"secret_key": "r" * 40}


@contextlib.asynccontextmanager
async def replicas(database_url: str, clock: FakeClock) -> AsyncIterator[tuple[InProcess, InProcess]]:
    async with (
        in_process(database_url=database_url, clock=clock, **SHARED) as a,
        in_process(database_url=database_url, clock=clock, **SHARED) as b,
    ):
        yield a, b


async def test_a_token_revoked_on_one_replica_is_refused_by_another_within_a_second(postgres_url: str) -> None:
    async with replicas(postgres_url, FakeClock()) as (a, b):
        client, tokens = await login(a)
        assert (await call_tool(b, tokens.access_token, "whoami")).status_code == 200  # now cached in b
        assert (await a.http.post("/revoke", data={"token": tokens.refresh_token, "client_id": client.client_id})).status_code == 200
        assert (await call_tool(a, tokens.access_token, "whoami")).status_code == 401  # at once where revoked
        started = time.monotonic()
        while (await call_tool(b, tokens.access_token, "whoami")).status_code != 401:
            assert time.monotonic() - started < 1.0, "the other replica still accepts the revoked token"
            await asyncio.sleep(0.02)


async def test_a_rotated_access_token_is_refused_by_the_other_replica_too(postgres_url: str) -> None:
    async with replicas(postgres_url, FakeClock()) as (a, b):
        client, tokens = await login(a)
        assert (await call_tool(b, tokens.access_token, "whoami")).status_code == 200
        response = await a.http.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "client_id": client.client_id}
        )
        assert response.status_code == 200
        started = time.monotonic()
        while (await call_tool(b, tokens.access_token, "whoami")).status_code != 401:
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.02)


async def test_without_notifications_the_cache_lifetime_bounds_staleness(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # SQLite has no NOTIFY: a second process would learn of a revocation when its entry ages out.
    clock = FakeClock()
    async with replicas(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}", clock) as (a, b):
        client, tokens = await login(a)
        assert (await call_tool(b, tokens.access_token, "whoami")).status_code == 200
        await a.http.post("/revoke", data={"token": tokens.refresh_token, "client_id": client.client_id})
        assert (await call_tool(a, tokens.access_token, "whoami")).status_code == 401
        clock.advance(31)
        assert (await call_tool(b, tokens.access_token, "whoami")).status_code == 401


async def test_on_sqlite_a_revocation_by_another_process_is_refused_within_a_second(db_url: str) -> None:
    # Two apps on one SQLite file have two connections, as the server and an admin command do.
    async with replicas(db_url, FakeClock()) as (server, admin):
        _, tokens = await login(server)
        assert (await call_tool(server, tokens.access_token, "whoami")).status_code == 200  # now cached
        grant = (await admin.services.store.list_grants())[0]
        await admin.services.revoker.revoke_grant(grant.grant_id, reason="test", at_github=False)
        started = time.monotonic()
        while (await call_tool(server, tokens.access_token, "whoami")).status_code != 401:
            assert time.monotonic() - started < 1.0, "the server still accepts the revoked token"
            await asyncio.sleep(0.02)
