"""Which headers cross the gateway: the attack cases, header by header."""

from __future__ import annotations

import pytest

from auth_mcp.gateway import crossing
from auth_mcp.gateway.crossing import to_client, to_upstream


def names(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {name for name, _ in headers}


def test_the_mcp_headers_reach_the_upstream() -> None:
    sent = [
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-protocol-version", b"2026-07-28"),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"echo"),
        (b"last-event-id", b"e-17"),
        (b"user-agent", b"client/1"),
    ]
    assert to_upstream(sent) == sent


def test_credentials_hop_by_hop_and_forwarding_headers_do_not_reach_the_upstream() -> None:
    sent = [
        (b"authorization", b"Bearer client-token"),
        (b"cookie", b"session=1"),
        (b"connection", b"keep-alive, x-secret"),
        (b"x-secret", b"named by Connection"),
        (b"keep-alive", b"timeout=5"),
        (b"te", b"trailers"),
        (b"trailer", b"x-late"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"websocket"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"content-length", b"5"),
        (b"host", b"auth-mcp.example"),
        (b"forwarded", b"for=1.2.3.4"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-host", b"evil.example"),
        (b"x-real-ip", b"1.2.3.4"),
        (b"origin", b"https://inspector.example"),
        (b"mcp-session-id", b"sealed"),
        (b"x-request-id", b"client-chosen"),
        (b"accept-encoding", b"gzip"),
    ]
    assert to_upstream(sent) == []


def test_the_upstream_cannot_act_on_auth_mcp_s_origin() -> None:
    answered = [
        (b"content-type", b"text/event-stream"),
        (b"Set-Cookie", b"session=stolen; Path=/"),
        (b"SET-COOKIE", b"other=1"),
        (b"set-cookie2", b"x=1"),
        (b"clear-site-data", b'"cookies"'),
        (b"strict-transport-security", b"max-age=1"),
        (b"alt-svc", b'h3=":443"'),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-credentials", b"true"),
        (b"www-authenticate", b'Bearer resource_metadata="https://elsewhere"'),
        (b"Connection", b"X-Internal"),
        (b"X-Internal", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"MCP-Protocol-Version", b"2025-06-18"),
    ]
    assert names(to_client(answered)) == {b"content-type", b"mcp-protocol-version"}


def test_verdicts_hold_when_a_name_comes_again_in_any_case_and_past_the_memo_s_bound() -> None:
    answered = [(b"X-Tool-Version", b"1"), (b"Set-Cookie", b"a=1"), (b"Connection", b"keep-alive")]
    first, again = to_client(answered), to_client(answered)
    assert first == again == [(b"x-tool-version", b"1")]
    assert to_client([(b"SET-COOKIE", b"b=2"), (b"x-tool-version", b"2")]) == [(b"x-tool-version", b"2")]
    # Many made-up names fill the memo; a name judged after that is judged all the same.
    for index in range(5000):
        to_upstream([(f"x-filler-{index}".encode(), b"v")])
    assert to_upstream([(b"cookie", b"s=1"), (b"x-late-name", b"v")]) == [(b"x-late-name", b"v")]


def test_every_connection_header_names_hop_by_hop_fields() -> None:
    sent = [
        (b"connection", b"keep-alive"),
        (b"connection", b"X-Secret"),
        (b"x-secret", b"named by the second Connection header"),
        (b"content-type", b"application/json"),
    ]
    assert to_upstream(sent) == [(b"content-type", b"application/json")]
    answered = [(b"CONNECTION", b"x-upstream-secret"), (b"X-Upstream-Secret", b"1"), (b"Content-Type", b"text/plain")]
    assert to_client(answered) == [(b"content-type", b"text/plain")]


def test_the_request_that_makes_the_memo_forget_keeps_its_own_known_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crossing._Verdicts, "MAX_NAMES", 10)
    monkeypatch.setattr(
        crossing, "_TO_UPSTREAM", crossing._Verdicts(crossing._NOT_TO_UPSTREAM, crossing._NOT_TO_UPSTREAM_PREFIXES)
    )
    known = [(b"content-type", b"application/json"), (b"accept", b"application/json")]
    assert to_upstream(known) == known
    for index in range(7):  # the memo: 9 names of 10
        to_upstream([(f"x-filler-{index}".encode(), b"v")])
    new = [(b"x-new-1", b"v"), (b"x-new-2", b"v")]  # 11 names: the memo forgets, in this request
    assert to_upstream([*known, *new]) == [*known, *new]
