"""The deprecated SSE transport: sessions bound to the grant that opened them, closed when it is
revoked, and capped per grant and per address. Over real HTTP on a loopback server.

Measured on main before the binding: a revoked grant's stream kept delivering results, and
another grant of the same person could post into it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator

import httpx
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import Receive, Scope, Send

from auth_mcp.resource.sse_sessions import MAX_STREAMS_PER_GRANT, SseSessions
from auth_mcp.resource.verifier import McpAccessToken
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
    # The same person through two clients: two grants (signing in again through one client would
    # end its older grant, provider._retire_superseded).
    client = await new_client(env)
    _, first = await login(env, client, login="alice")
    _, second = await login(env, await new_client(env), login="alice")
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


async def test_streams_are_capped_per_address_across_grants() -> None:
    # The guard alone, on a loopback server, in front of a stand-in stream (the SDK's SSE app
    # needs a login per grant; the cap is about counting, whoever the grants are).
    sessions = SseSessions(grant_exists=_always, max_per_grant=10, max_per_address=3)

    async def stream_forever(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    guarded = sessions.guard(stream_forever)

    async def as_grant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            grant = dict(scope["headers"])[b"x-grant"].decode()
            token = McpAccessToken(token="t", client_id="c", scopes=[], grant_id=grant, github_user_id=1, github_login="a")
            scope["user"] = AuthenticatedUser(token)
        await guarded(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(as_grant, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/sse"
        async with httpx.AsyncClient(timeout=WAIT) as http, contextlib.AsyncExitStack() as stack:
            for grant in ("g1", "g2", "g3"):
                opened = await stack.enter_async_context(http.stream("GET", url, headers={"x-grant": grant}))
                assert opened.status_code == 200
            refused = await http.get(url, headers={"x-grant": "g4"})
            assert refused.status_code == 429 and "address" in refused.json()["error_description"]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _always(_grant_id: str) -> bool:
    return True
