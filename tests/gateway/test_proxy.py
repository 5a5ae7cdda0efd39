"""The pass-through against upstreams that misbehave: one that tries to read the client's token or
set cookies, one that is down, slow or answers garbage, one that streams; and clients that try to
use a token or a session where it does not belong."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.types import Receive, Scope, Send

from auth_mcp import admin
from tests.support.gateway import LEGACY_VERSION, tokens_for
from tests.support.oauth import mcp_call
from tests.support.server import RunningServer, run_server
from tests.support.tls import private_authority
from tests.support.upstreams import (
    Recording,
    closed_port_url,
    json_answer,
    raw_http_server,
    serve,
)

CALL_HEADERS, CALL = mcp_call("echo", {"message": "hi"})


@dataclass
class Setup:
    server: RunningServer
    upstream: Recording
    upstream_url: str
    token: str  # alice's, for /mcp/a

    def url(self, name: str = "a") -> str:
        return f"{self.server.url}/mcp/{name}"


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, db_url: str, *, extra: str = "", upstream_b: str | None = None) -> AsyncIterator[Setup]:
    """Upstreams `a` and `b` in front of one recording upstream (b may point elsewhere)."""
    recording = Recording()
    async with serve(recording, lifespan="off") as served:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[upstreams.a]\nurl = "{served.url}"\n{extra}\n[upstreams.b]\nurl = "{upstream_b or served.url + "/b"}"\n{extra}\n'
        )
        async with run_server(database_url=db_url, gateway_config=str(config)) as server:
            token = (await tokens_for(server, "/mcp/a")).access_token
            yield Setup(server=server, upstream=recording, upstream_url=served.url, token=token)


def bearer(token: str) -> dict[str, str]:
    return {**CALL_HEADERS, "Authorization": f"Bearer {token}"}


# What reaches the upstream -------------------------------------------------------------------------


async def test_the_upstream_sees_an_identity_token_and_never_the_client_s_token_cookies_or_forwarding_headers(
    tmp_path: Path, db_url: str
) -> None:
    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        headers = {
            **bearer(setup.token),
            "Cookie": "auth_mcp_browser=secret",
            "X-Forwarded-For": "203.0.113.9",
            "Forwarded": "for=203.0.113.9",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "named by Connection",
            "Proxy-Authorization": "Basic eDp5",
            "X-Request-Id": "bad id\twith a tab",
            "X-Custom-Extension": "passes",
        }
        response = await http.post(setup.url(), json=CALL, headers=headers)
        assert response.status_code == 200, response.text
        request_id = response.headers["x-request-id"]
        assert request_id != "bad id\twith a tab"
    (seen,) = setup.upstream.requests
    received = seen["headers"]
    assert setup.token not in str(received)
    scheme, _, identity = received["authorization"].partition(" ")
    assert scheme == "Bearer" and jwt.get_unverified_header(identity)["typ"] == "at+jwt"
    assert jwt.decode(identity, options={"verify_signature": False})["aud"] == setup.upstream_url
    for absent in ("cookie", "x-forwarded-for", "forwarded", "x-secret", "proxy-authorization", "origin"):
        assert absent not in received, absent
    assert received["x-request-id"] == request_id  # this request's id, as in auth-mcp's log
    assert received["mcp-method"] == "tools/call" and received["mcp-name"] == "echo"
    assert received["x-custom-extension"] == "passes"
    assert seen["body"] == httpx.Request("POST", "http://x", json=CALL).content


async def test_the_upstream_cannot_set_cookies_or_anything_else_on_auth_mcp_s_origin(tmp_path: Path, db_url: str) -> None:
    async def answer(_scope: Scope, _receive: Receive, send: Send) -> None:
        await json_answer(
            send,
            {"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": False}},
            headers=[
                (b"set-cookie", b"auth_mcp_browser=planted; Path=/"),
                (b"set-cookie2", b"x=1"),
                (b"clear-site-data", b'"cookies"'),
                (b"strict-transport-security", b"max-age=31536000"),
                (b"access-control-allow-origin", b"*"),
                (b"www-authenticate", b'Bearer resource_metadata="https://evil.example/prm"'),
            ],
        )

    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        setup.upstream.answer = answer
        response = await http.post(setup.url(), json=CALL, headers=bearer(setup.token))
    assert response.status_code == 200
    for header in (
        "set-cookie",
        "set-cookie2",
        "clear-site-data",
        "strict-transport-security",
        "access-control-allow-origin",
        "www-authenticate",
    ):
        assert header not in response.headers, header
    assert response.json()["result"]["isError"] is False


async def test_a_request_smuggled_inside_a_chunked_body_stays_one_request(tmp_path: Path, db_url: str) -> None:
    smuggled = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}0\r\n\r\nPOST /admin HTTP/1.1\r\nHost: upstream\r\n\r\n'

    async def chunks() -> AsyncIterator[bytes]:
        yield smuggled[:20]
        yield smuggled[20:]

    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        headers = {**bearer(setup.token), "Content-Type": "application/json"}
        await http.post(setup.url(), content=chunks(), headers=headers)
    (seen,) = setup.upstream.requests  # one request, its body exactly what the client sent
    assert seen["body"] == smuggled and "transfer-encoding" not in seen["headers"]
    assert seen["headers"]["content-length"] == str(len(smuggled))


async def test_an_unauthenticated_preflight_is_never_forwarded(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        response = await http.options(setup.url())
    assert response.status_code == 405 and setup.upstream.requests == []


# Tokens and sessions where they do not belong ------------------------------------------------------


async def test_a_token_for_one_upstream_is_refused_at_another_and_at_the_built_in_tools(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        at_b = await http.post(setup.url("b"), json=CALL, headers=bearer(setup.token))
        assert at_b.status_code == 401
        challenge = at_b.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        assert f'resource_metadata="{setup.server.url}/.well-known/oauth-protected-resource/mcp/b"' in challenge
        at_builtin = await http.post(setup.server.url + "/mcp", json=mcp_call("whoami")[1], headers={
            **mcp_call("whoami")[0], "Authorization": f"Bearer {setup.token}"})  # fmt: skip
        assert at_builtin.status_code == 401
        builtin_token = (await tokens_for(setup.server, "/mcp")).access_token
        at_a = await http.post(setup.url("a"), json=CALL, headers=bearer(builtin_token))
        assert at_a.status_code == 401
        assert len(setup.upstream.requests) == 0


async def test_each_upstream_is_its_own_protected_resource(tmp_path: Path, db_url: str) -> None:
    async with (
        gateway(tmp_path, db_url, extra='scopes = ["read:user", "read:org"]') as setup,
        httpx.AsyncClient(timeout=30) as http,
    ):
        prm = (await http.get(setup.server.url + "/.well-known/oauth-protected-resource/mcp/a")).json()
        assert prm["resource"] == setup.url("a")
        assert prm["authorization_servers"] == [setup.server.url]
        assert prm["scopes_supported"] == ["read:user", "read:org"]
        # alice's token has read:user only: the upstream needs read:org too (step-up, as for tools).
        response = await http.post(setup.url("a"), json=CALL, headers=bearer(setup.token))
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert 'scope="read:user read:org"' in response.headers["www-authenticate"]


async def test_a_resource_that_is_not_served_here_gets_no_token(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup:
        try:
            await tokens_for(setup.server, "/mcp/nonexistent")
        except AssertionError as refused:
            assert "invalid_target" in str(refused)
        else:
            raise AssertionError("a token was issued for a resource this server does not serve")


# An upstream that is down, slow, garbage, or big ----------------------------------------------------


async def test_an_upstream_that_is_down_gets_a_prompt_502_naming_it(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url, upstream_b=closed_port_url()) as setup, httpx.AsyncClient(timeout=30) as http:
        token = (await tokens_for(setup.server, "/mcp/b")).access_token
        response = await http.post(setup.url("b"), json=CALL, headers=bearer(token))
    assert response.status_code == 502
    error = response.json()
    assert error["id"] == 1 and error["error"]["message"] == "upstream 'b' is unreachable (connection refused or failed)"


async def test_an_upstream_that_never_answers_gets_a_504_within_its_read_timeout(tmp_path: Path, db_url: str) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)  # holds the connection without a byte (the 504 comes first)
        writer.close()

    server, url = await raw_http_server(silent)
    async with server, gateway(tmp_path, db_url, upstream_b=url, extra="read_timeout = 0.3") as setup:
        token = (await tokens_for(setup.server, "/mcp/b")).access_token
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(setup.url("b"), json=CALL, headers=bearer(token))
    assert response.status_code == 504
    assert response.json()["error"]["message"] == "upstream 'b' did not answer in time (read timeout)"


async def test_an_upstream_answering_garbage_gets_a_502(tmp_path: Path, db_url: str) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"\x00\x01 this is not HTTP at all\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await raw_http_server(garbage)
    async with server, gateway(tmp_path, db_url, upstream_b=url) as setup:
        token = (await tokens_for(setup.server, "/mcp/b")).access_token
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(setup.url("b"), json=CALL, headers=bearer(token))
    assert response.status_code == 502
    assert "upstream 'b'" in response.json()["error"]["message"]


async def test_request_and_response_sizes_are_bounded(tmp_path: Path, db_url: str) -> None:
    async def huge(_scope: Scope, _receive: Receive, send: Send) -> None:
        await json_answer(send, {"jsonrpc": "2.0", "id": 1, "result": {"padding": "x" * 5000}})

    async with gateway(tmp_path, db_url, extra="max_request_bytes = 2048\nmax_response_bytes = 4096") as setup:
        setup.upstream.answer = huge
        async with httpx.AsyncClient(timeout=30) as http:
            too_big = {**CALL, "params": {"name": "echo", "arguments": {"message": "y" * 3000}}}
            refused = await http.post(setup.url(), json=too_big, headers=bearer(setup.token))
            assert refused.status_code == 413 and setup.upstream.requests == []
            answered = await http.post(setup.url(), json=CALL, headers=bearer(setup.token))
    assert answered.status_code == 502
    assert answered.json()["error"]["message"] == "upstream 'a' answered more than 4096 bytes"


async def test_the_access_log_names_the_tool_called_whichever_protocol_version_names_it(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 2026-07-28 names the tool in Mcp-Name; 2025-06-18 only in the body, which the proxy's
    # policy reads (the bearer guard, with no tool scopes to check at an upstream, does not).
    legacy_headers = {**bearer("-"), "MCP-Protocol-Version": LEGACY_VERSION}
    del legacy_headers["Mcp-Method"], legacy_headers["Mcp-Name"]
    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        with caplog.at_level(logging.INFO, logger="auth_mcp.access"):
            modern = await http.post(setup.url(), json=CALL, headers=bearer(setup.token))
            legacy_headers["Authorization"] = f"Bearer {setup.token}"
            legacy = await http.post(setup.url(), json={**CALL, "id": 2}, headers=legacy_headers)
            setup.server.app.state.services.log_writer.flush()
    assert modern.status_code == legacy.status_code == 200
    assert len(setup.upstream.requests) == 2
    lines = [record.getMessage() for record in caplog.records if record.name == "auth_mcp.access"]
    calls = [line for line in lines if '"POST /mcp/a" 200' in line]
    assert len(calls) == 2 and all(line.endswith(" tool=echo") for line in calls), lines


# Streams -------------------------------------------------------------------------------------------


async def test_sse_events_reach_the_client_as_the_upstream_sends_them(tmp_path: Path, db_url: str) -> None:
    release = asyncio.Event()

    async def stream(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b'id: e1\ndata: {"first":true}\n\n', "more_body": True})
        await release.wait()  # the second event only once the client has seen the first
        await send({"type": "http.response.body", "body": b'id: e2\ndata: {"second":true}\n\n', "more_body": False})

    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        setup.upstream.answer = stream
        headers = {**bearer(setup.token), "Last-Event-ID": "e0"}
        async with http.stream("GET", setup.url(), headers=headers) as response:
            assert response.headers["content-type"] == "text/event-stream"
            lines = response.aiter_lines()
            async with asyncio.timeout(10):
                assert await anext(lines) == "id: e1"
                assert await anext(lines) == 'data: {"first":true}'
            release.set()
            rest = [line async for line in lines]
        assert 'data: {"second":true}' in rest
    assert setup.upstream.requests[0]["headers"]["last-event-id"] == "e0"


async def test_a_client_that_goes_away_cancels_the_upstream_request(tmp_path: Path, db_url: str) -> None:
    started, upstream_saw_disconnect = asyncio.Event(), asyncio.Event()

    async def waits(_scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        started.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        upstream_saw_disconnect.set()

    async with gateway(tmp_path, db_url) as setup:
        setup.upstream.answer = waits
        async with httpx.AsyncClient(timeout=30) as http:
            request = asyncio.create_task(http.post(setup.url(), json=CALL, headers=bearer(setup.token)))
            async with asyncio.timeout(10):
                await started.wait()
            request.cancel()  # the client closes its connection
            with contextlib.suppress(asyncio.CancelledError):
                await request
        async with asyncio.timeout(10):
            await upstream_saw_disconnect.wait()
        (grant,) = await setup.server.services.store.list_grants()
        gateway_parts = setup.server.services.gateway
        assert gateway_parts is not None
        async with asyncio.timeout(10):
            while gateway_parts.proxies["a"].streams.open_for(grant.github_user_id):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0)  # let the cancelled request's bookkeeping finish


async def test_a_person_can_hold_only_so_many_open_requests_at_an_upstream(tmp_path: Path, db_url: str) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(_scope: Scope, _receive: Receive, send: Send) -> None:
        arrived.set()
        await release.wait()
        await json_answer(send, {"jsonrpc": "2.0", "id": 1, "result": {}})

    async with gateway(tmp_path, db_url, extra="max_streams_per_person = 1") as setup, httpx.AsyncClient(timeout=30) as http:
        setup.upstream.answer = slow
        first = asyncio.create_task(http.post(setup.url(), json=CALL, headers=bearer(setup.token)))
        async with asyncio.timeout(10):
            await arrived.wait()
        second = await http.post(setup.url(), json=CALL, headers=bearer(setup.token))
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        assert "too many open requests to upstream 'a'" in second.json()["error"]["message"]
        release.set()
        assert (await first).status_code == 200
        third = await http.post(setup.url(), json=CALL, headers=bearer(setup.token))
        assert third.status_code == 200


async def test_an_upstream_that_opted_in_receives_the_person_s_github_token(tmp_path: Path, db_url: str) -> None:
    recording = Recording()
    async with serve(recording, lifespan="off") as served:
        config = tmp_path / "gateway.toml"
        config.write_text(f'[upstreams.gh]\nurl = "{served.url}"\nforward = "github-token"\n')
        async with run_server(database_url=db_url, gateway_config=str(config)) as server:
            token = (await tokens_for(server, "/mcp/gh")).access_token
            async with httpx.AsyncClient(timeout=30) as http:
                response = await http.post(server.url + "/mcp/gh", json=CALL, headers=bearer(token))
            assert response.status_code == 200
            (grant,) = await server.services.store.list_grants()
            github_token = server.services.keyring.decrypt(grant.github.token_enc)
    (seen,) = recording.requests
    assert seen["headers"]["authorization"] == f"Bearer {github_token}"
    assert token not in str(seen["headers"])


async def test_an_https_upstream_with_a_private_ca_is_reached_through_its_ca_file(tmp_path: Path, db_url: str) -> None:
    authority = private_authority(tmp_path / "tls")
    recording = Recording()
    async with serve(recording, lifespan="off", certificate=authority.server_pem) as served:
        config = tmp_path / "gateway.toml"
        # `a` trusts the private CA (a path relative to the file); `b`, the same server, does not.
        config.write_text(f'[upstreams.a]\nurl = "{served.url}"\nca_file = "tls/ca.pem"\n[upstreams.b]\nurl = "{served.url}"\n')
        async with run_server(database_url=db_url, gateway_config=str(config)) as server, httpx.AsyncClient(timeout=30) as http:
            token_a = (await tokens_for(server, "/mcp/a")).access_token
            token_b = (await tokens_for(server, "/mcp/b")).access_token
            reached = await http.post(f"{server.url}/mcp/a", json=CALL, headers=bearer(token_a))
            refused = await http.post(f"{server.url}/mcp/b", json=CALL, headers=bearer(token_b))
            ready = (await http.get(f"{server.url}/readyz")).json()
    assert reached.status_code == 200
    assert [request["method"] for request in recording.requests] == ["POST", "GET"]  # the call, then a's probe
    assert refused.status_code == 502
    assert refused.json()["error"]["message"] == "upstream 'b' failed the TLS handshake (CERTIFICATE_VERIFY_FAILED)"
    upstreams = ready["upstreams"]
    assert upstreams["a"]["reachable"] is True
    assert upstreams["b"]["reachable"] is False and "CERTIFICATE_VERIFY_FAILED" in upstreams["b"]["detail"]


async def test_readyz_reports_each_upstream_and_stays_ready_when_one_is_down(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url, upstream_b=closed_port_url()) as setup, httpx.AsyncClient(timeout=30) as http:
        response = await http.get(setup.server.url + "/readyz")
    assert response.status_code == 200
    upstreams = response.json()["upstreams"]
    assert upstreams["a"]["reachable"] is True and upstreams["a"]["url"] == setup.upstream_url
    assert upstreams["b"] == {"url": upstreams["b"]["url"], "reachable": False, "detail": "connection refused or failed"}


async def test_the_jwk_set_holds_the_public_signing_key_only(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url) as setup, httpx.AsyncClient(timeout=30) as http:
        response = await http.get(setup.server.url + "/.well-known/jwks.json")
        await http.post(setup.url(), json=CALL, headers=bearer(setup.token))
    assert response.headers["content-type"] == "application/jwk-set+json"
    (key,) = response.json()["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and "d" not in key
    identity = setup.upstream.requests[0]["headers"]["authorization"].split(" ", 1)[1]
    assert jwt.get_unverified_header(identity)["kid"] == key["kid"]


async def test_the_admin_command_lists_upstreams_and_their_health(tmp_path: Path, db_url: str) -> None:
    async with gateway(tmp_path, db_url, upstream_b=closed_port_url()) as setup:
        gateway_parts = setup.server.services.gateway
        assert gateway_parts is not None
        report = await admin.list_upstreams(gateway_parts.config, gateway_parts.health)
    assert report.lines[0].split() == ["upstream", "path", "forward", "scopes", "health", "url"]
    a, b = report.lines[2], report.lines[3]
    assert a.startswith("a ") and "/mcp/a" in a and "up, HTTP" in a and setup.upstream_url in a
    assert b.startswith("b ") and "DOWN, connection refused or failed" in b
    assert not report.ok and report.problems == ["Upstream 'b' does not answer."]


async def test_without_a_gateway_file_the_admin_command_says_so() -> None:
    report = await admin.list_upstreams(None, None)
    assert report.ok and report.lines == ["No upstreams: AUTH_MCP_GATEWAY_CONFIG is not set."]
