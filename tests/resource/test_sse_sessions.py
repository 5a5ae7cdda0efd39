"""The deprecated SSE transport: sessions bound to the grant that opened them, closed when it is
revoked, and capped per grant and per address. Over real HTTP on a loopback server.

Measured on main before the binding: a revoked grant's stream kept delivering results, and
another grant of the same person could post into it."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from auth_mcp.resource.sse_sessions import MAX_STREAMS_PER_GRANT
from tests.support.clock import FakeClock
from tests.support.oauth import Client, Tokens, login, new_client
from tests.support.server import InProcess, RunningServer, run_server

WAIT = 10.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def _env(server: RunningServer, clock: FakeClock) -> InProcess:
    env = InProcess(app=server.app, settings=server.settings, clock=clock, http=None)  # type: ignore[arg-type]
    env.http = env.client()
    return env


@contextlib.asynccontextmanager
async def sse_stream(server: RunningServer, token: str) -> AsyncIterator[tuple[httpx.Response, str, AsyncIterator[str]]]:
    """An open /sse stream: (response, the message path with session id, its remaining lines)."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http,
        http.stream("GET", "/sse", headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        lines = response.aiter_lines()
        endpoint = ""
        if response.status_code == 200:
            async with asyncio.timeout(WAIT):
                async for line in lines:
                    if line.startswith("data: /messages/"):
                        endpoint = line.removeprefix("data: ")
                        break
        yield response, endpoint, lines


async def still_open(lines: AsyncIterator[str]) -> bool:
    """The stream is still open a moment later (it neither ended nor failed)."""
    try:
        async with asyncio.timeout(0.3):
            async for _ in lines:
                pass
    except TimeoutError:
        return True
    return False


async def post(server: RunningServer, endpoint: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        response = await http.post(endpoint, json=INITIALIZE, headers={"Authorization": f"Bearer {token}"})
        return response.status_code


async def two_grants(env: InProcess) -> tuple[Client, Tokens, Tokens]:
    client = await new_client(env)
    _, first = await login(env, client, login="alice")
    _, second = await login(env, client, login="alice")  # the same person, client and scopes: another grant
    return client, first, second


async def test_another_grant_of_the_same_person_cannot_post_into_a_session(db_url: str) -> None:
    clock = FakeClock()
    async with run_server(database_url=db_url, transport="sse", clock=clock) as server:
        env = _env(server, clock)
        _, first, second = await two_grants(env)
        async with sse_stream(server, first.access_token) as (response, endpoint, _):
            assert response.status_code == 200 and re.search(r"session_id=[0-9a-f]{32}", endpoint)
            assert await post(server, endpoint, second.access_token) == 404
            assert await post(server, endpoint, first.access_token) == 202


async def test_revoking_a_grant_closes_its_stream(db_url: str) -> None:
    clock = FakeClock()
    async with run_server(database_url=db_url, transport="sse", clock=clock) as server:
        env = _env(server, clock)
        client, first, second = await two_grants(env)
        async with sse_stream(server, first.access_token) as (_, _, lines), sse_stream(server, second.access_token) as (_, _, other):
            revoked = await env.http.post("/revoke", data={"token": first.refresh_token, **client.auth()})
            assert revoked.status_code == 200
            async with asyncio.timeout(WAIT):  # the stream ends: no more results for a revoked grant
                rest = [line async for line in lines]
            assert not any(line.startswith("event: message") for line in rest)
            # The other grant's stream is untouched.
            assert await still_open(other)


async def test_streams_are_capped_per_grant(db_url: str) -> None:
    clock = FakeClock()
    async with run_server(database_url=db_url, transport="sse", clock=clock) as server:
        env = _env(server, clock)
        _, tokens = await login(env, login="alice")
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(MAX_STREAMS_PER_GRANT):
                response, _, _ = await stack.enter_async_context(sse_stream(server, tokens.access_token))
                assert response.status_code == 200
            async with sse_stream(server, tokens.access_token) as (refused, _, _):
                assert refused.status_code == 429 and "retry-after" in refused.headers
        # Closed streams free their places.
        async with sse_stream(server, tokens.access_token) as (again, _, _):
            assert again.status_code == 200
