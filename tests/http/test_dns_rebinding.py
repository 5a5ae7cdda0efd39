"""Host and Origin checks on the MCP endpoint (MCP transports: DNS rebinding)."""

from __future__ import annotations

import pytest

from tests.support.oauth import call_tool, login
from tests.support.server import in_process

GITHUB_MODE = {"github_client_id": "id", "github_client_secret": "secret", "server_url": "https://mcp.example.com"}


async def test_a_foreign_host_is_misdirected(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        response = await call_tool(env, issued.access_token, "whoami", host="evil.example")
        assert response.status_code == 421


async def test_a_foreign_origin_is_forbidden_before_authentication(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        response = await call_tool(env, issued.access_token, "whoami", origin="https://evil.example")
        assert response.status_code == 403
        assert (await call_tool(env, None, "whoami", origin="https://evil.example")).status_code == 403


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000", "http://localhost:6274", "http://[::1]:3000"])
async def test_a_loopback_server_accepts_loopback_origins(db_url: str, origin: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        assert (await call_tool(env, issued.access_token, "whoami", origin=origin)).status_code == 200


async def test_a_public_server_accepts_its_own_and_configured_hosts_and_origins(db_url: str) -> None:
    settings = {**GITHUB_MODE, "allowed_origins": "https://app.example", "allowed_hosts": "internal:8000"}
    async with in_process(database_url=db_url, **settings) as env:
        for headers, status in (
            ({"host": "mcp.example.com"}, 401),
            ({"host": "internal:8000"}, 401),
            ({"host": "127.0.0.1:8000"}, 401),
            ({"host": "evil.example"}, 421),
            ({"host": "mcp.example.com", "origin": "https://mcp.example.com"}, 401),
            ({"host": "mcp.example.com", "origin": "https://app.example"}, 401),
            ({"host": "mcp.example.com", "origin": "http://localhost:6274"}, 403),
            ({"host": "mcp.example.com", "origin": "https://mcp.example.com.evil.example"}, 403),
            ({"host": "mcp.example.com", "origin": "null"}, 403),
        ):
            response = await call_tool(env, None, "whoami", **headers)
            assert response.status_code == status, headers


async def test_oauth_endpoints_are_not_subject_to_the_mcp_host_check(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await env.http.get("/.well-known/oauth-authorization-server", headers={"host": "other.example"})
        assert response.status_code == 200


async def test_the_remembered_host_origin_verdicts_stay_bounded_and_keep_no_long_values() -> None:
    from auth_mcp.http import dns_rebinding

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    async def ignore(message: object) -> None:
        return None

    guard = dns_rebinding.DnsRebindingGuard(app, issuer="http://127.0.0.1:8000", allowed_hosts=[], allowed_origins=[])
    long_origin = b"https://" + b"a" * 1000 + b".example"
    await guard({"type": "http", "headers": [(b"host", b"127.0.0.1:8000"), (b"origin", long_origin)]}, None, ignore)  # type: ignore[arg-type]
    assert guard._pairs == {}  # decided, not kept
    for number in range(dns_rebinding._PAIRS_LIMIT + 50):  # a stranger's ever new Origins
        await guard({"type": "http", "headers": [(b"host", b"127.0.0.1:8000"), (b"origin", b"https://x%d.example" % number)]}, None, ignore)  # type: ignore[arg-type]
    assert len(guard._pairs) == dns_rebinding._PAIRS_LIMIT
