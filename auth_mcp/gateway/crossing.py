"""Which HTTP headers cross the gateway, in each direction.

Towards the upstream, the client's end-to-end headers pass (Content-Type, Accept,
MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID, extension headers, ...) except:
- hop-by-hop headers (RFC 9110 §7.6.1): Connection, every header Connection names, Keep-Alive,
  TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*; the framing is ours to set (Content-Length
  too), so a request cannot smuggle a second one past us;
- the client's credentials: Authorization (MCP: tokens are never passed through), Cookie;
- what the client could use to lie about the path of the request: Forwarded, X-Forwarded-*,
  X-Real-IP; and what belongs to the browser-to-auth-mcp leg, checked already (Host, Origin,
  Referer); and our own Mcp-Session-Id (replaced by the upstream's) and X-Request-Id (replaced
  by this request's id).
Towards the client, the upstream's headers pass except hop-by-hop ones and what would act on
auth-mcp's origin rather than on one response: cookies (Set-Cookie, Set-Cookie2), Clear-Site-Data,
Strict-Transport-Security, Alt-Svc, CORS grants (Access-Control-*; auth-mcp decides CORS), and
WWW-Authenticate (a challenge would send the client to log in somewhere other than here).
"""

from __future__ import annotations

from collections.abc import Iterable

_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection"})
_NOT_TO_UPSTREAM = _HOP_BY_HOP | frozenset(
    {
        b"host",
        b"content-length",
        b"authorization",
        b"cookie",
        b"forwarded",
        b"x-real-ip",
        b"origin",
        b"referer",
        b"mcp-session-id",
        b"x-request-id",
        b"accept-encoding",
    }
)
_NOT_TO_CLIENT = _HOP_BY_HOP | frozenset(
    {
        b"content-length",
        b"content-encoding",
        b"set-cookie",
        b"set-cookie2",
        b"clear-site-data",
        b"strict-transport-security",
        b"alt-svc",
        b"www-authenticate",
        b"mcp-session-id",
        b"x-request-id",
        b"date",
        b"server",
    }
)
_NOT_TO_UPSTREAM_PREFIXES = (b"proxy-", b"x-forwarded-")
_NOT_TO_CLIENT_PREFIXES = (b"proxy-", b"access-control-")


def _named_by_connection(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    # RFC 9110 §7.6.1: every field named in Connection is hop-by-hop too.
    named: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            named.update(part.strip().lower() for part in value.split(b","))
    return frozenset(named)


def to_upstream(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's headers (ASGI: lower-case names) that go on to the upstream."""
    dropped = _named_by_connection(headers)
    return [
        (name, value)
        for name, value in headers
        if name not in _NOT_TO_UPSTREAM and name not in dropped and not name.startswith(_NOT_TO_UPSTREAM_PREFIXES)
    ]


def to_client(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers (any case, as received) that go back to the client, with
    lower-case names as ASGI wants them."""
    headers = [(name.lower(), value) for name, value in headers]
    dropped = _named_by_connection(headers)
    return [
        (name, value)
        for name, value in headers
        if name not in _NOT_TO_CLIENT and name not in dropped and not name.startswith(_NOT_TO_CLIENT_PREFIXES)
    ]
