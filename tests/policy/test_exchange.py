"""One request through the gateway's policy and audit trail, as the proxy drives it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from auth_mcp.audit import AuditRecorder
from auth_mcp.clock import SystemClock
from auth_mcp.policy import ToolAccess, read_policies
from auth_mcp.policy.exchange import ToolGate
from auth_mcp.policy.jsonrpc import POLICY_REFUSED
from auth_mcp.resource.verifier import McpAccessToken
from auth_mcp.scopes import SUPPORTED_SCOPES
from auth_mcp.storage.audit import AuditQuery, AuditStore
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import upgrade
from tests.support.clock import FakeClock

POLICY = """
[upstreams.alpha]
url = "http://127.0.0.1:9/mcp"

[[upstreams.alpha.tools]]
match = "echo"
users = [1]

[[upstreams.alpha.tools]]
match = "admin_*"
users = [1]
scopes = ["read:org"]

[upstreams.open]
url = "http://127.0.0.1:9/mcp"
"""


def token(user_id: int, login: str, scopes: tuple[str, ...] = ("read:user",)) -> McpAccessToken:
    return McpAccessToken(
        token="t",
        client_id="client-1",
        scopes=list(scopes),
        expires_at=None,
        resource="http://127.0.0.1:8000/mcp/alpha",
        grant_id="g" * 64,
        github_user_id=user_id,
        github_login=login,
        client_name="Test client",
    )


ALICE = token(1, "alice")
BOB = token(2, "bob")


def call(name: str, request_id: int = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": {"secret": "s3"}}}


LIST = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
LISTED = json.dumps({"jsonrpc": "2.0", "id": 9, "result": {"tools": [{"name": "echo"}, {"name": "admin_reset"}, {"name": "x"}]}}).encode()


@pytest.fixture
async def audit(db_url: str) -> AsyncIterator[tuple[AuditRecorder, AuditStore]]:
    engine = create_engine(db_url)
    await upgrade(engine)
    store = AuditStore(engine=engine, clock=SystemClock(), retention_days=0)
    try:
        yield AuditRecorder(sink=store, metrics=None), store
    finally:
        await engine.dispose()


def gate(recorder: AuditRecorder, upstream: str = "alpha", **kwargs: object) -> ToolGate:
    rules = read_policies(POLICY, source="gateway.toml", supported_scopes=SUPPORTED_SCOPES).for_upstream(upstream)
    return ToolGate(upstream=upstream, access=ToolAccess(rules=rules, memberships=None), recorder=recorder, clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


async def outcomes(recorder: AuditRecorder, store: AuditStore) -> list[tuple[str, str, str]]:
    await recorder.flush()
    return [(event.github_login, event.tool, event.outcome) for event in reversed(await store.find(AuditQuery()))]


async def test_a_refused_call_is_answered_here_and_recorded_as_refused(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, store = audit
    exchange = await gate(recorder).open(BOB, call("echo"), mcp_name="echo", request_id="r1")
    assert exchange.refusal["error"]["code"] == POLICY_REFUSED and exchange.refusal["id"] == 1
    exchange.end()
    assert await outcomes(recorder, store) == [("bob", "echo", "refused")]


async def test_an_allowed_call_is_ok_or_tool_error_as_the_upstream_answers(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, store = audit
    first = await gate(recorder).open(ALICE, call("echo"), mcp_name="echo", request_id="r1")
    assert first.refusal is None and not first.missing_scopes
    first.relay(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": False}}).encode())
    first.end()
    second = await gate(recorder).open(ALICE, call("echo", 2), mcp_name="echo", request_id="r2")
    second.relay(json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"content": [], "isError": True}}).encode())
    second.end()
    assert await outcomes(recorder, store) == [("alice", "echo", "ok"), ("alice", "echo", "tool_error")]


async def test_a_call_without_an_answer_is_an_upstream_failure(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, store = audit
    exchange = await gate(recorder, "open").open(BOB, call("anything"), mcp_name=None, request_id="r1")
    exchange.relay(b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}')
    exchange.end(failure="the upstream did not answer within 120 s")
    await recorder.flush()
    [event] = await store.find(AuditQuery())
    assert (event.upstream, event.outcome, event.detail) == ("open", "upstream_failure", "the upstream did not answer within 120 s")


async def test_a_client_naming_another_tool_in_mcp_name_than_in_the_body_is_refused(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, store = audit
    # Alice may call echo, not x: the header names the allowed tool, the body the other.
    exchange = await gate(recorder).open(ALICE, call("x"), mcp_name="echo", request_id="r1")
    assert exchange.refusal is not None and "Mcp-Name" in exchange.refusal["error"]["message"]
    exchange.end()
    assert await outcomes(recorder, store) == [("alice", "x", "refused")]


async def test_a_rule_s_scope_the_token_lacks_asks_for_a_step_up(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, store = audit
    exchange = await gate(recorder).open(ALICE, call("admin_reset"), mcp_name="admin_reset", request_id="r1")
    assert exchange.refusal is None and exchange.missing_scopes == ("read:org",)
    exchange.end()
    stepped_up = token(1, "alice", ("read:user", "read:org"))
    with_scope = await gate(recorder).open(stepped_up, call("admin_reset"), mcp_name=None, request_id="r2")
    assert with_scope.refusal is None and not with_scope.missing_scopes
    assert await outcomes(recorder, store) == [("alice", "admin_reset", "refused")]


async def test_tools_list_shows_each_caller_only_what_they_may_call(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, _ = audit
    for caller, visible in ((ALICE, ["echo", "admin_reset"]), (BOB, [])):
        exchange = await gate(recorder).open(caller, LIST, mcp_name=None, request_id="r")
        relayed = json.loads(exchange.relay(LISTED))
        assert [tool["name"] for tool in relayed["result"]["tools"]] == visible
    # An SSE stream's other events, and replies to other ids, pass byte for byte.
    exchange = await gate(recorder).open(BOB, LIST, mcp_name=None, request_id="r")
    other = b'{"jsonrpc":"2.0","id":10,"result":{"tools":[{"name":"x"}]}}'
    assert exchange.relay(other) is other
    # An upstream answering in UTF-16 (which JSON parsers guess from the bytes) is filtered too.
    exchange = await gate(recorder).open(BOB, LIST, mcp_name=None, request_id="r")
    relayed = json.loads(exchange.relay(LISTED.decode().encode("utf-16")))
    assert relayed["result"]["tools"] == []


async def test_arguments_are_kept_only_when_opted_in(audit: tuple[AuditRecorder, AuditStore]) -> None:
    recorder, store = audit
    for kwargs in ({}, {"arguments_max_bytes": 8}):
        exchange = await gate(recorder, "open", **kwargs).open(ALICE, call("echo"), mcp_name=None, request_id="r")
        exchange.end()
    await recorder.flush()
    assert [event.arguments for event in reversed(await store.find(AuditQuery()))] == [None, '{"secret…(truncated)']
