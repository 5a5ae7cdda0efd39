"""Tokens for a gateway upstream's resource over real HTTP, and raw MCP requests to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.browser import Browser
from tests.support.oauth import Tokens, login
from tests.support.server import RunningServer

LEGACY_VERSION = "2025-06-18"


@dataclass
class _Site:
    """What tests/support/oauth.py needs of a server (InProcess's shape), for a running one."""

    issuer: str
    mcp_url: str  # the resource tokens are asked for
    http: httpx.AsyncClient

    def browser(self, **kwargs: Any) -> Browser:
        return Browser(**kwargs)


async def tokens_for(server: RunningServer, path: str, *, person: str = "alice", **params: str) -> Tokens:
    """Register a client, authorize as `person` for the resource `{issuer}{path}` (with `params`
    such as scope=...), exchange the code."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        site = _Site(issuer=server.url, mcp_url=server.url + path, http=http)
        _client, tokens = await login(site, login=person, **params)  # type: ignore[arg-type]
    return tokens


def initialize_body(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
    }


def mcp_headers(token: str, session: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": LEGACY_VERSION,
        **extra,
    }
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return headers


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a JSON or SSE response."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        return body if isinstance(body, list) else [body]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
