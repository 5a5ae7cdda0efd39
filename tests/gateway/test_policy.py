"""Per-tool policy and the audit trail through the real proxy: two upstreams (MCP SDK servers, one
answering JSON, one SSE) with different rules in one gateway file, people in and out of the
organisation, a client lying about the tool it calls, and the audit rows of each outcome."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from auth_mcp.policy.jsonrpc import POLICY_REFUSED
from auth_mcp.storage.audit import AuditQuery
from tests.support.gateway import mcp_headers, messages, tokens_for
from tests.support.oauth import mcp_call
from tests.support.server import RunningServer, run_server
from tests.support.upstreams import closed_port_url, serve

TOOLS = ["delete_repo", "echo", "fail", "list_repos"]


@dataclass
class Upstream:
    """An MCP SDK server whose tools note each run, so a test can tell what was forwarded."""

    ran: list[str] = field(default_factory=list)

    def app(self, *, json_response: bool) -> ASGIApp:
        mcp = MCPServer("upstream")

        @mcp.tool()
        async def echo(message: str = "") -> str:
            self.ran.append("echo")
            return message

        @mcp.tool()
        async def list_repos() -> list[str]:
            self.ran.append("list_repos")
            return ["one"]

        @mcp.tool()
        async def delete_repo(name: str = "") -> str:
            self.ran.append("delete_repo")
            return f"deleted {name}"

        @mcp.tool()
        async def fail() -> str:
            self.ran.append("fail")
            raise ValueError("this tool always fails")

        return mcp.streamable_http_app(
            stateless_http=True,
            json_response=json_response,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )


@dataclass
class Setup:
    server: RunningServer
    json_upstream: Upstream  # "a": answers JSON
    sse_upstream: Upstream  # "b": answers with event streams

    async def audited(self) -> list[tuple[str, str, str, str]]:
        audit = self.server.services.audit
        await audit.recorder.flush()
        events = await audit.store.find(AuditQuery())
        return [(event.github_login, event.upstream, event.tool, event.outcome) for event in reversed(events)]


def gateway_file(a: str, b: str) -> str:
    return f"""
# Upstream a: echo for every signed-in person, delete_* for the platform team with read:org,
# the rest for members of acme.
[upstreams.a]
url = "{a}"

[[upstreams.a.tools]]
match = "echo"

[[upstreams.a.tools]]
match = "delete_*"
teams = ["acme/platform"]
scopes = ["read:org"]

[[upstreams.a.tools]]
match = "*"
orgs = ["acme"]

# Upstream b: bob only, and never mallory.
[upstreams.b]
url = "{b}"

[[upstreams.b.tools]]
match = "*"
users = ["mallory"]
allow = false

[[upstreams.b.tools]]
match = "*"
users = ["bob"]

# Upstream down: nothing listens there; no rules.
[upstreams.down]
url = "{closed_port_url()}"
"""


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, db_url: str) -> AsyncIterator[Setup]:
    a, b = Upstream(), Upstream()
    async with serve(a.app(json_response=True)) as served_a, serve(b.app(json_response=False)) as served_b:
        config = tmp_path / "gateway.toml"
        config.write_text(gateway_file(served_a.url, served_b.url))
        async with run_server(database_url=db_url, gateway_config=str(config)) as server:
            stand_in = server.services.dev_github
            assert stand_in is not None
            stand_in.options.orgs = {"alice": ["acme"], "carol": ["acme"]}
            stand_in.options.teams = {"alice": ["acme/platform"]}
            yield Setup(server=server, json_upstream=a, sse_upstream=b)


async def token(setup: Setup, upstream: str, person: str, scope: str = "read:user read:org") -> str:
    return (await tokens_for(setup.server, f"/mcp/{upstream}", person=person, scope=scope)).access_token


def request(upstream: str, access_token: str, method: str, tool: str | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Upstream a is asked in the stateless 2026-07-28 protocol (answers JSON); b in 2025-06-18,
    which the SDK answers with an event stream."""
    if upstream == "b":
        params = {"name": tool, "arguments": {}} if tool is not None else {}
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return mcp_headers(access_token), body
    headers, body = mcp_call(tool or "x")
    if tool is None:
        body.update(method=method, params={"_meta": body["params"]["_meta"]})
        headers["Mcp-Method"] = method
        del headers["Mcp-Name"]
    return {**headers, "Authorization": f"Bearer {access_token}"}, body


async def call(
    setup: Setup, upstream: str, access_token: str, tool: str, *, mcp_name: str | None = None
) -> httpx.Response:
    headers, body = request(upstream, access_token, "tools/call", tool)
    if mcp_name is not None:
        headers["Mcp-Name"] = mcp_name
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{setup.server.url}/mcp/{upstream}", json=body, headers=headers)


async def listed(setup: Setup, upstream: str, access_token: str) -> list[str]:
    headers, body = request(upstream, access_token, "tools/list")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{setup.server.url}/mcp/{upstream}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    (answer,) = messages(response)
    return sorted(tool["name"] for tool in answer["result"]["tools"])


def refusal(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    (answer,) = messages(response)
    assert answer["error"]["code"] == POLICY_REFUSED, answer
    return answer["error"]


async def test_each_upstream_lists_what_its_own_policy_lets_the_caller_call_in_json_and_in_sse(
    tmp_path: Path, db_url: str
) -> None:
    async with gateway(tmp_path, db_url) as setup:
        alice_a, alice_b = await token(setup, "a", "alice"), await token(setup, "b", "alice")
        bob_a, bob_b = await token(setup, "a", "bob"), await token(setup, "b", "bob")
        assert await listed(setup, "a", alice_a) == TOOLS  # a member of acme and of its platform team
        assert await listed(setup, "a", bob_a) == ["echo"]  # outside acme
        assert await listed(setup, "b", alice_b) == []  # b is bob's
        assert await listed(setup, "b", bob_b) == TOOLS


async def test_the_sse_answer_of_a_tools_list_is_filtered_as_it_streams(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup:
        carol = await token(setup, "b", "carol")
        headers, body = request("b", carol, "tools/list")
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{setup.server.url}/mcp/b", json=body, headers=headers)
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.text.splitlines()
        assert "event: message" in lines  # the event's other fields kept
        data = [line for line in lines if line.startswith("data:")]
        assert len(data) == 1 and json.loads(data[0][5:]) == {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}


async def test_a_person_outside_the_organisation_sees_and_can_call_nothing_protected(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup:
        mallory_a, mallory_b = await token(setup, "a", "mallory"), await token(setup, "b", "mallory")
        assert await listed(setup, "a", mallory_a) == ["echo"]
        assert await listed(setup, "b", mallory_b) == []
        for tool in ("list_repos", "delete_repo", "fail"):
            error = refusal(await call(setup, "a", mallory_a, tool))
            assert error["data"]["tool"] == tool and "mallory" in error["message"]
        error = refusal(await call(setup, "b", mallory_b, "echo"))
        assert error["data"]["tool"] == "echo"
        assert setup.json_upstream.ran == [] and setup.sse_upstream.ran == []  # never forwarded
        response = await call(setup, "a", mallory_a, "echo")
        assert messages(response)[0]["result"]["isError"] is False
        assert setup.json_upstream.ran == ["echo"]


async def test_a_client_naming_another_tool_in_mcp_name_than_in_its_body_is_refused(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup:
        bob = await token(setup, "a", "bob")
        # The header names the tool bob may call; the body the one he may not.
        error = refusal(await call(setup, "a", bob, "list_repos", mcp_name="echo"))
        assert "Mcp-Name" in error["message"]
        # A body naming two tools (parsers disagree on which one runs) is not forwarded either.
        headers, _ = mcp_call("echo")
        raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"list_repos"}}'
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{setup.server.url}/mcp/a", content=raw, headers={**headers, "Authorization": f"Bearer {bob}"}
            )
        assert response.status_code == 400 and "repeats a key" in response.json()["error"]["message"]
        assert setup.json_upstream.ran == []
        assert await setup.audited() == [("bob", "a", "list_repos", "refused")]


async def test_a_rule_s_scope_missing_from_the_token_gets_the_bearer_guard_s_step_up(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup:
        without = await token(setup, "a", "alice", scope="read:user")
        response = await call(setup, "a", without, "delete_repo")
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="read:org"' in challenge
        assert "resource_metadata=" in challenge and "/mcp/a" in challenge
        assert setup.json_upstream.ran == []
        stepped_up = await token(setup, "a", "alice", scope="read:user read:org")
        response = await call(setup, "a", stepped_up, "delete_repo")
        assert messages(response)[0]["result"]["isError"] is False
        assert setup.json_upstream.ran == ["delete_repo"]


async def test_every_call_through_the_proxy_is_audited_with_its_outcome(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup:
        alice_a, alice_b = await token(setup, "a", "alice"), await token(setup, "b", "alice")
        bob_b, carol_down = await token(setup, "b", "bob"), await token(setup, "down", "carol")
        await call(setup, "a", alice_a, "list_repos")
        failed = await call(setup, "a", alice_a, "fail")
        assert messages(failed)[0]["result"]["isError"] is True
        await call(setup, "b", alice_b, "echo")
        streamed = await call(setup, "b", bob_b, "echo")  # answered in an event stream
        assert streamed.headers["content-type"].startswith("text/event-stream")
        down = await call(setup, "down", carol_down, "anything")
        assert down.status_code == 502
        assert await setup.audited() == [
            ("alice", "a", "list_repos", "ok"),
            ("alice", "a", "fail", "tool_error"),
            ("alice", "b", "echo", "refused"),
            ("bob", "b", "echo", "ok"),
            ("carol", "down", "anything", "upstream_failure"),
        ]
        events = await setup.server.services.audit.store.find(AuditQuery(outcome="upstream_failure"))
        (event,) = events
        assert "unreachable" in (event.detail or "") and event.latency_ms >= 0 and event.request_id not in ("", "-")
        assert event.client_id and event.github_user_id > 0
