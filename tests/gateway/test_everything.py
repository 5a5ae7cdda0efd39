"""The gateway in front of a real MCP server nobody here wrote: `@modelcontextprotocol/server-everything`
(streamableHttp, session-based, SSE), reached by the official Python SDK client through the whole
OAuth flow at /mcp/everything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from mcp import types

from tests.support.browser import Browser
from tests.support.gateway import initialize_body, mcp_headers, messages, tokens_for
from tests.support.mcp_client import OAuthUser, connect
from tests.support.server import RunningServer, run_server
from tests.support.upstreams import NodeUpstream, everything


@contextlib.asynccontextmanager
async def gateway_to_everything(tmp_path: Path, db_url: str) -> AsyncIterator[tuple[RunningServer, NodeUpstream]]:
    with everything(tmp_path / "everything") as upstream:
        config = tmp_path / "gateway.toml"
        config.write_text(f'[upstreams.everything]\nurl = "{upstream.url}"\n')
        async with run_server(database_url=db_url, gateway_config=str(config)) as server:
            yield server, upstream


async def test_a_person_logs_in_at_the_upstream_s_resource_and_calls_its_tools(tmp_path: Path, db_url: str) -> None:
    async with gateway_to_everything(tmp_path, db_url) as (server, _upstream):
        user = OAuthUser(browser=Browser(login="alice"))
        async with connect(server.url + "/mcp/everything", user, mode="legacy") as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"echo", "get-sum", "trigger-long-running-operation"} <= tools
            result = await client.call_tool("echo", {"message": "through the gateway"})
            assert not result.is_error
            assert result.content[0].text == "Echo: through the gateway"  # type: ignore[union-attr]
        assert user.authorizations == 1


async def test_progress_notifications_arrive_while_the_tool_runs(tmp_path: Path, db_url: str) -> None:
    async with gateway_to_everything(tmp_path, db_url) as (server, _upstream):
        seen: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, _message: str | None) -> None:
            seen.append((progress, total))

        async with connect(server.url + "/mcp/everything", OAuthUser(browser=Browser(login="alice")), mode="legacy") as client:
            result = await client.call_tool(
                "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
            )
            assert not result.is_error
        assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_the_upstream_asks_the_client_for_sampling_and_elicitation_through_the_gateway(tmp_path: Path, db_url: str) -> None:
    async def sample(_context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)  # type: ignore[union-attr]
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="sampled!"), model="test")

    async def elicit(_context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Alice", "check": True})

    asked: list[str] = []
    async with gateway_to_everything(tmp_path, db_url) as (server, _upstream):
        user = OAuthUser(browser=Browser(login="alice"))
        async with connect(
            server.url + "/mcp/everything", user, mode="legacy", sampling_callback=sample, elicitation_callback=elicit
        ) as client:
            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
            elicited = await client.call_tool("trigger-elicitation-request", {})
    assert not sampled.is_error and "sampled!" in sampled.content[0].text  # type: ignore[union-attr]
    assert not elicited.is_error and "Alice" in str(elicited.content)
    assert asked[0].endswith("hello") and asked[1].startswith("Please provide inputs")


async def test_resources_and_prompts_pass_through(tmp_path: Path, db_url: str) -> None:
    user = OAuthUser(browser=Browser(login="alice"))
    async with (
        gateway_to_everything(tmp_path, db_url) as (server, _upstream),
        connect(server.url + "/mcp/everything", user, mode="legacy") as client,
    ):
        resources = (await client.list_resources()).resources
        assert resources
        read = await client.read_resource(resources[0].uri)
        assert read.contents
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert "simple-prompt" in prompts
        prompt = await client.get_prompt("simple-prompt", {})
        assert prompt.messages


async def open_session(http: httpx.AsyncClient, url: str, token: str) -> str:
    response = await http.post(url, json=initialize_body(), headers=mcp_headers(token))
    assert response.status_code == 200, response.text
    assert messages(response)[0]["result"]["serverInfo"]
    session = response.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, json=initialized, headers=mcp_headers(token, session))).status_code == 202
    return session


ECHO = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}}


async def test_a_session_id_works_only_for_the_person_who_opened_it(tmp_path: Path, db_url: str) -> None:
    async with gateway_to_everything(tmp_path, db_url) as (server, upstream):
        alice = (await tokens_for(server, "/mcp/everything", person="alice")).access_token
        bob = (await tokens_for(server, "/mcp/everything", person="bob")).access_token
        url = server.url + "/mcp/everything"
        async with httpx.AsyncClient(timeout=30) as http:
            session = await open_session(http, url, alice)
            # The client holds a sealed id, never the upstream's own.
            assert session not in upstream.output()
            answer = await http.post(url, json=ECHO, headers=mcp_headers(alice, session))
            assert messages(answer)[0]["result"]["content"][0]["text"] == "Echo: hi"
            stolen = await http.post(url, json=ECHO, headers=mcp_headers(bob, session))
            assert stolen.status_code == 404  # as for an unknown session: Bob cannot use Alice's
            assert "Session not found" in stolen.json()["error"]["message"]
            forged = await http.post(url, json=ECHO, headers=mcp_headers(alice, "not-a-sealed-id"))
            assert forged.status_code == 404


async def test_a_session_continues_on_another_replica_and_ends_with_delete(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    secret = "replicas-share-this-secret-" + "k" * 20
    with everything(tmp_path / "everything") as upstream:
        config = tmp_path / "gateway.toml"
        config.write_text(f'[upstreams.everything]\nurl = "{upstream.url}"\n')
        async with (
            run_server(database_url=database, gateway_config=str(config), secret_key=secret) as one,
            run_server(database_url=database, gateway_config=str(config), secret_key=secret, server_url=one.url) as two,
        ):
            token = (await tokens_for(one, "/mcp/everything")).access_token
            path = "/mcp/everything"
            async with httpx.AsyncClient(timeout=30) as http:
                session = await open_session(http, f"http://127.0.0.1:{one.port}{path}", token)
                # The other replica (same issuer, as behind a load balancer) continues the session.
                answer = await http.post(f"http://127.0.0.1:{two.port}{path}", json=ECHO, headers=mcp_headers(token, session))
                assert messages(answer)[0]["result"]["content"][0]["text"] == "Echo: hi"
                ended = await http.delete(f"http://127.0.0.1:{two.port}{path}", headers=mcp_headers(token, session))
                assert ended.status_code == 200
                after = await http.post(f"http://127.0.0.1:{one.port}{path}", json=ECHO, headers=mcp_headers(token, session))
                assert after.status_code in (400, 404)  # the upstream no longer knows the session
