"""Host and Origin checks on the MCP endpoints (MCP basic/transports: DNS rebinding).

A page on a hostile site can make a browser talk to this server by rebinding its own name to
our address; the browser then sends the hostile `Host` and `Origin`. We answer only:
- a `Host` that is this server's public host, a configured one (`AUTH_MCP_ALLOWED_HOSTS`, for
  proxies that rewrite it), or a loopback address (which a rebound name can never produce);
- an `Origin` (when present: non-browser clients send none) that is this server's, a configured
  one (`AUTH_MCP_ALLOWED_ORIGINS`, for browser-based clients), or, when this server itself is on
  loopback, a loopback origin.
A bad Host gets 421, a bad Origin 403 (MUST in the transport spec), both before authentication.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from auth_mcp.http.headers import BoundedMemo, Decisions, request_headers
from auth_mcp.http.hosts import is_loopback_host

_PAIRS_LIMIT = 1024


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _host_only(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class DnsRebindingGuard:
    """Wraps the MCP endpoint's ASGI app; the OAuth endpoints are meant to be reached from anywhere."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        issuer: str,
        allowed_hosts: Sequence[str],
        allowed_origins: Sequence[str],
    ) -> None:
        self._app = app
        own = urlsplit(issuer)
        self._hosts = {own.netloc.lower(), *(h.lower() for h in allowed_hosts)}
        self._origins = {_origin_of(issuer), *(_origin_of(o) for o in allowed_origins)}
        self._loopback_origins_ok = is_loopback_host(own.hostname)
        self._host_decisions = Decisions(self.host_allowed)
        self._origin_decisions = Decisions(self.origin_allowed)
        # Per (Host, Origin) pair as sent: 0 when both pass, else the refusal's status. Clients
        # send the same pair on every call.
        self._pairs: BoundedMemo[tuple[bytes | None, bytes | None], int] = BoundedMemo(limit=_PAIRS_LIMIT)

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.lower()
        return host in self._hosts or _host_only(host) in self._hosts or is_loopback_host(_host_only(host))

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        origin = origin.lower()
        if origin in self._origins:
            return True
        if self._loopback_origins_ok:
            parts = urlsplit(origin)
            return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)
        return False

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: it returns the one to await (the app's, or the refusal), so a
        # request that passes costs no frame of this layer's while it is served.
        if scope["type"] != "http":
            return self._app(scope, receive, send)
        headers = request_headers(scope)
        pair = (headers.get(b"host"), headers.get(b"origin"))
        refusal = self._pairs.get(pair)
        if refusal is None:
            refusal = self._pairs.keep(pair, self._refusal(*pair), len(pair[0] or b"") + len(pair[1] or b""))
        if refusal:
            return _refuse(scope, receive, send, refusal, "Invalid Host header" if refusal == 421 else "Invalid Origin header")
        return self._app(scope, receive, send)

    def _refusal(self, host: bytes | None, origin: bytes | None) -> int:
        if not self._host_decisions(host):
            return 421
        if origin is not None and not self._origin_decisions(origin):
            return 403
        return 0


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    # A JSON-RPC error without id, as the transport spec allows for the 403.
    body = {"jsonrpc": "2.0", "error": {"code": -32600, "message": message}}
    await JSONResponse(body, status_code=status)(scope, receive, send)
