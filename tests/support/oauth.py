"""OAuth steps by hand over HTTP, for tests that probe each endpoint (attacks, edge cases)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support.browser import Browser
from tests.support.server import InProcess

REDIRECT_URI = "http://127.0.0.1:4567/callback"


@dataclass
class Client:
    client_id: str
    redirect_uri: str
    client_secret: str | None = None

    def auth(self) -> dict[str, str]:
        form = {"client_id": self.client_id}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        return form


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    scope: str
    expires_in: int


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


async def register(
    http: httpx.AsyncClient,
    *,
    redirect_uris: list[str] | None = None,
    auth_method: str = "none",
    name: str = "Test client",
    **extra: Any,
) -> httpx.Response:
    body = {
        "client_name": name,
        "redirect_uris": redirect_uris or [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method,
        **extra,
    }
    return await http.post("/register", json=body)


async def new_client(env: InProcess, **kwargs: Any) -> Client:
    response = await register(env.http, **kwargs)
    assert response.status_code == 201, response.text
    body = response.json()
    return Client(client_id=body["client_id"], redirect_uri=body["redirect_uris"][0], client_secret=body.get("client_secret"))


def authorize_url(env: InProcess, client: Client, challenge: str, *, state: str = "client-state", **params: str) -> str:
    query_params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": env.mcp_url,
        **params,
    }
    return f"{env.issuer}/authorize?{urlencode({k: v for k, v in query_params.items() if v is not None})}"


async def authorize(env: InProcess, client: Client, *, browser: Browser | None = None, **params: str) -> tuple[dict[str, str], str]:
    """Run the browser part; returns (query of the client's redirect, code_verifier)."""
    verifier, challenge = pkce()
    browser = browser or env.browser()
    final = await browser.go(authorize_url(env, client, challenge, **params), until=client.redirect_uri)
    return query(final), verifier


async def exchange(env: InProcess, client: Client, code: str, verifier: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": verifier,
        "resource": env.mcp_url,
        **client.auth(),
        **extra,
    }
    return await env.http.post("/token", data=form)


async def refresh(env: InProcess, client: Client, refresh_token: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "resource": env.mcp_url, **client.auth(), **extra}
    return await env.http.post("/token", data=form)


async def login(env: InProcess, client: Client | None = None, *, login: str = "alice", **params: str) -> tuple[Client, Tokens]:
    """Register (unless given a client), authorize as `login`, exchange: a token pair."""
    client = client or await new_client(env)
    result, verifier = await authorize(env, client, browser=env.browser(login=login), **params)
    assert "code" in result, result
    response = await exchange(env, client, result["code"], verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    return client, Tokens(body["access_token"], body["refresh_token"], body["scope"], body["expires_in"])


def mcp_call(tool: str, arguments: dict[str, Any] | None = None, *, request_id: int = 1) -> tuple[dict[str, str], dict[str, Any]]:
    """A stateless 2026-07-28 tools/call: (headers, body)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments or {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    return headers, body


async def call_tool(env: InProcess, token: str | None, tool: str, arguments: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    base_headers, body = mcp_call(tool, arguments)
    if token is not None:
        base_headers["Authorization"] = f"Bearer {token}"
    return await env.http.post("/mcp", json=body, headers={**base_headers, **headers})
