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

from itertools import compress
from operator import itemgetter

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
_NAME, _VALUE = itemgetter(0), itemgetter(1)
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})  # name no header beyond the hop-by-hop ones


class _Verdicts:
    """Which header names cross, learnt once per name as it comes from the wire: the rules run
    once per new name, not per header per request (a tool call's headers are the same few).
    Bounded: past MAX_NAMES different names, what was learnt is forgotten and learnt again."""

    MAX_NAMES = 4096

    def __init__(self, stopped: frozenset[bytes], prefixes: tuple[bytes, ...]) -> None:
        self._stopped_names = stopped
        self._prefixes = prefixes
        self.crossing: dict[bytes, bytes] = {}  # name as sent -> its lower-case form
        self.stopped: set[bytes] = set()

    def learn(self, new: set[bytes], request: list[bytes]) -> None:
        """Judge the `new` names of a header list whose names are `request`."""
        names = new
        if len(self.crossing) + len(self.stopped) + len(new) > self.MAX_NAMES:
            self.crossing.clear()
            self.stopped.clear()
            names = set(request)  # the request's other names were forgotten with the rest
        for name in names:
            lower = name.lower()
            if lower not in self._stopped_names and not lower.startswith(self._prefixes):
                self.crossing[name] = lower
            else:
                self.stopped.add(name)


_TO_UPSTREAM = _Verdicts(_NOT_TO_UPSTREAM, _NOT_TO_UPSTREAM_PREFIXES)
_TO_CLIENT = _Verdicts(_NOT_TO_CLIENT, _NOT_TO_CLIENT_PREFIXES)


def _named_by_connection(values: list[bytes]) -> frozenset[bytes]:
    # RFC 9110 §7.6.1: every field named in Connection is hop-by-hop too.
    named: set[bytes] = set()
    for value in values:
        named.update(part.strip().lower() for part in value.split(b","))
    return frozenset(named - _PLAIN_CONNECTION)


def _cross(verdicts: _Verdicts, headers: list[tuple[bytes, bytes]], lower_case: bool) -> list[tuple[bytes, bytes]]:
    # Iterators and set operations that run in C: a tool call's headers cost no Python per header.
    crossing, stopped = verdicts.crossing, verdicts.stopped
    names = list(map(_NAME, headers))
    new = set(names).difference(crossing, stopped)
    if new:  # names not seen before: judged once
        verdicts.learn(new, names)
    kept = list(compress(headers, map(crossing.__contains__, names)))
    if not lower_case:
        kept = list(zip(map(crossing.__getitem__, map(_NAME, kept)), map(_VALUE, kept), strict=True))
        names = list(map(bytes.lower, names))
    if b"connection" in names:
        connection = list(compress(map(_VALUE, headers), map(b"connection".__eq__, names)))  # in C
        if any(value.lower() not in _PLAIN_CONNECTION for value in connection):
            dropped = _named_by_connection(connection)
            kept = [(name, value) for name, value in kept if name not in dropped]
    return kept


def to_upstream(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The client's headers (ASGI: lower-case names) that go on to the upstream."""
    return _cross(_TO_UPSTREAM, headers, lower_case=True)


def to_client(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers (any case, as received) that go back to the client, with
    lower-case names as ASGI wants them."""
    return _cross(_TO_CLIENT, headers, lower_case=False)
