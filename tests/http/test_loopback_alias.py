"""One URL on loopback: the other loopback name is told the URL to use."""

from __future__ import annotations

import httpx

from tests.support.server import in_process

ISSUER = "http://localhost:8000"


async def test_a_client_pointed_at_127_0_0_1_is_told_to_use_the_localhost_url() -> None:
    async with in_process(server_url=ISSUER) as env:
        other = env.client(base_url="http://127.0.0.1:8000")
        refused = await other.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 421
        assert refused.json()["error"]["message"] == (
            "This server is http://localhost:8000, not http://127.0.0.1:8000: use http://localhost:8000/mcp"
        )
        metadata = await other.get("/.well-known/oauth-authorization-server")
        assert metadata.status_code == 421 and "use http://localhost:8000/mcp" in metadata.json()["error_description"]
        await other.aclose()


async def test_a_browser_on_the_other_name_is_sent_to_the_same_page_on_the_right_one() -> None:
    async with in_process(server_url=ISSUER) as env:
        other = env.client(base_url="http://127.0.0.1:8000")
        page = await other.get("/account?x=1", headers={"Accept": "text/html"})
        assert page.status_code == 307 and page.headers["location"] == "http://localhost:8000/account?x=1"
        await other.aclose()


async def test_health_checks_and_the_issuers_own_name_are_answered_as_before() -> None:
    async with in_process(server_url=ISSUER) as env:
        other = env.client(base_url="http://127.0.0.1:8000")
        assert (await other.get("/healthz")).status_code == 200
        await other.aclose()
        assert (await env.http.get("/.well-known/oauth-authorization-server")).status_code == 200
        elsewhere = env.client(base_url="http://127.0.0.1:9999")  # another port: not this server's alias
        assert (await elsewhere.get("/.well-known/oauth-authorization-server")).status_code == 200
        await elsewhere.aclose()


async def test_a_public_issuer_is_not_concerned() -> None:
    async with in_process(server_url="https://mcp.example.com", github_client_id="id", github_client_secret="s") as env:
        other = env.client(base_url="http://127.0.0.1:8000")
        assert (await other.get("/.well-known/oauth-authorization-server")).status_code == 200
        await other.aclose()
        assert isinstance(env.http, httpx.AsyncClient)
