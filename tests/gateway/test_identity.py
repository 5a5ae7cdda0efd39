"""The identity token, verified by an upstream written with the Python SDK's TokenVerifier that knows
only auth-mcp's issuer, its own audience and jwks_uri (tests/support/upstreams.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.browser import Browser
from tests.support.gateway import tokens_for
from tests.support.mcp_client import OAuthUser, connect
from tests.support.oauth import mcp_call
from tests.support.server import RunningServer, free_port, run_server
from tests.support.upstreams import jwt_verifying_app, serve


@dataclass
class Setup:
    server: RunningServer
    upstream_url: str


@contextlib.asynccontextmanager
async def gateway_to_verifier(tmp_path: Path, db_url: str, *, audience: str | None = None) -> AsyncIterator[Setup]:
    # Each side needs the other's URL: fix both ports first.
    auth_port, upstream_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{auth_port}"
    upstream_url = f"http://127.0.0.1:{upstream_port}/mcp"
    app = jwt_verifying_app(
        issuer=issuer, audience=audience or upstream_url, jwks_uri=issuer + "/.well-known/jwks.json", resource_url=upstream_url
    )
    config = tmp_path / "gateway.toml"
    config.write_text(f'[upstreams.notes]\nurl = "{upstream_url}"\n')
    async with (
        serve(app, port=upstream_port),
        run_server(port=auth_port, database_url=db_url, gateway_config=str(config)) as server,
    ):
        yield Setup(server=server, upstream_url=upstream_url)


async def test_the_upstream_verifies_who_is_calling_with_only_issuer_audience_and_jwks_uri(tmp_path: Path, db_url: str) -> None:
    async with gateway_to_verifier(tmp_path, db_url) as setup:
        server = setup.server
        async with httpx.AsyncClient() as http:
            metadata = (await http.get(server.url + "/.well-known/oauth-authorization-server")).json()
        assert metadata["jwks_uri"] == server.url + "/.well-known/jwks.json"
        user = OAuthUser(browser=Browser(login="alice"))
        async with connect(server.url + "/mcp/notes", user) as client:
            result = await client.call_tool("who_is_calling", {})
        assert not result.is_error, result
        claims = result.structured_content
        assert claims is not None
        grant = await server.services.store.list_grants()  # the person, as auth-mcp knows them
        assert claims["iss"] == server.url and claims["aud"] == setup.upstream_url
        assert claims["sub"] == str(grant[0].github_user_id) and claims["login"] == "alice"
        assert claims["client_id"] == user.storage.client_info.client_id  # type: ignore[union-attr]
        assert claims["scope"] == "read:user"


async def test_an_upstream_expecting_another_audience_refuses_the_token(tmp_path: Path, db_url: str) -> None:
    async with gateway_to_verifier(tmp_path, db_url, audience="http://127.0.0.1:1/other-upstream") as setup:
        url = setup.server.url + "/mcp/notes"
        async with httpx.AsyncClient(timeout=30) as http:
            token = (await tokens_for(setup.server, "/mcp/notes")).access_token
            headers, body = mcp_call("who_is_calling")
            response = await http.post(url, json=body, headers={**headers, "Authorization": f"Bearer {token}"})
        # The upstream's 401 is a configuration mismatch between auth-mcp and it, not the client's
        # credential: a 502 naming the problem, never a challenge that would send the client to log in.
        assert response.status_code == 502
        assert "refused auth-mcp's identity token" in response.json()["error"]["message"]
        assert "www-authenticate" not in response.headers
