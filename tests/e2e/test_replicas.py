"""Two replicas on one PostgreSQL behind nginx (round robin), the issuer being nginx's URL: any
step of a login and any MCP request may land on either replica."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.support.browser import Browser
from tests.support.deployment import METRICS_TOKEN, deployment
from tests.support.mcp_client import OAuthUser, connect


async def test_the_whole_flow_across_two_replicas_and_a_revocation_reaches_both(tmp_path: Path, postgres_url: str) -> None:
    with deployment(tmp_path, postgres_url) as deployed:
        issuer, replicas = deployed.issuer, deployed.replicas
        alice, bob = OAuthUser(browser=Browser(login="alice")), OAuthUser(browser=Browser(login="bob"))
        for user in (alice, bob):
            async with connect(f"{issuer}/mcp", user) as client:
                for _ in range(4):  # round robin: these land on both replicas
                    result = await client.call_tool("get_user_profile", {})
                    assert result.structured_content["login"] == user.browser.login  # type: ignore[index]
        async with httpx.AsyncClient() as http:
            # Both replicas served tool calls, and the login steps were spread over them.
            scraper = {"authorization": f"Bearer {METRICS_TOKEN}"}
            seen = [(await http.get(f"{replica}/metrics", headers=scraper)).text for replica in replicas]
            assert all('route="/mcp"' in metrics for metrics in seen)
            for step in ("/authorize", "/consent", "/github/callback", "/token", "/register"):
                assert any(f'route="{step}"' in metrics for metrics in seen), step
            assert alice.storage.tokens is not None and alice.storage.client_info is not None
            token = alice.storage.tokens.access_token
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "whoami",
                    "arguments": {},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/call",
                "Mcp-Name": "whoami",
            }
            for replica in replicas:  # each replica has the token cached now
                assert (await http.post(f"{replica}/mcp", json=call, headers=headers)).status_code == 200
            revoked = await http.post(
                f"{replicas[0]}/revoke",
                data={"token": alice.storage.tokens.refresh_token, "client_id": alice.storage.client_info.client_id},
            )
            assert revoked.status_code == 200
            started = time.monotonic()
            while (await http.post(f"{replicas[1]}/mcp", json=call, headers=headers)).status_code != 401:
                assert time.monotonic() - started < 1.0, "the other replica still accepts a revoked token"
                await asyncio.sleep(0.05)
            assert (await http.post(f"{replicas[0]}/mcp", json=call, headers=headers)).status_code == 401
            # Bob is untouched.
            assert bob.storage.tokens is not None
            bob_headers = {**headers, "Authorization": f"Bearer {bob.storage.tokens.access_token}"}
            assert (await http.post(f"{issuer}/mcp", json=call, headers=bob_headers)).status_code == 200
