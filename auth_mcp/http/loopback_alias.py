"""One URL on loopback: a request to `127.0.0.1` for a `localhost` server (or the reverse) is told
which URL to use.

OAuth compares the issuer and the resource as strings (RFC 8414 §3.3, RFC 9728 §3.3): a client
pointed at `http://127.0.0.1:8000/mcp` while this server is `http://localhost:8000` fails with
"Protected resource http://localhost:8000/mcp does not match expected http://127.0.0.1:8000/mcp",
and cookies set on one name are not sent to the other, so a sign-in half on each fails too.
Both names reach the same socket, so instead of half-working we answer the other name:
a browser asking for a page is redirected to the same path on the right name; anything else
gets 421 Misdirected Request (RFC 9110 §15.5.20) whose body names the URL to use.

Only loopback names of a loopback issuer on the same port are concerned; health checks and
metrics scrapes (which address a process by IP) are answered whatever the name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.types import Scope, Send

from auth_mcp.http.headers import Decisions
from auth_mcp.http.hosts import is_loopback_host
from auth_mcp.http.negotiation import prefers_html

ANY_NAME_PATHS = ("/healthz", "/readyz", "/metrics")


class LoopbackAlias:
    """The check, made by the server's one layer (http/every_request.py) before any route; only
    built for a loopback issuer (`applies`)."""

    def __init__(self, *, issuer: str, mcp_url: str) -> None:
        own = urlsplit(issuer)
        self._issuer = issuer
        self._mcp_url = mcp_url
        self._host = (own.hostname or "").lower()
        self._port = own.port or (443 if own.scheme == "https" else 80)
        self._aliases = Decisions(self._is_alias)

    @staticmethod
    def applies(issuer: str) -> bool:
        return is_loopback_host(urlsplit(issuer).hostname)

    def _is_alias(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        parts = urlsplit(f"//{host_header}")
        try:
            port = parts.port
        except ValueError:
            return False
        name = (parts.hostname or "").lower()
        return name != self._host and is_loopback_host(name) and (port or 80) == self._port

    async def answered(self, scope: Scope, headers: Mapping[bytes, bytes], send: Send) -> bool:
        """Whether the request (`headers`: http/headers.py) came by the other loopback name and has
        been told the URL to use; when False, nothing was sent."""
        if scope["path"] in ANY_NAME_PATHS:
            return False
        raw = headers.get(b"host")
        if not self._aliases(raw):
            return False
        host = (raw or b"").decode("latin-1")
        if scope["method"] in ("GET", "HEAD") and prefers_html(headers.get(b"accept", b"").decode("latin-1")):
            query = scope.get("query_string", b"").decode("latin-1")
            location = self._issuer + scope["path"] + (f"?{query}" if query else "")
            await _answer(send, 307, b"", [(b"location", location.encode("latin-1"))])
            return True
        message = f"This server is {self._issuer}, not http://{host}: use {self._mcp_url}"
        if scope["path"].startswith(("/mcp", "/sse", "/messages")):
            body = {"jsonrpc": "2.0", "error": {"code": -32600, "message": message}}
        else:
            body = {"error": "invalid_request", "error_description": message}
        await _answer(send, 421, json.dumps(body).encode(), [(b"content-type", b"application/json")])
        return True


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})
