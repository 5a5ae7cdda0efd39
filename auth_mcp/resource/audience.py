"""RFC 8707 resource indicators: which `resource` values name this server, and its canonical one."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalize(value: str) -> str | None:
    """Scheme and host compared case-insensitively, default port and trailing slash elided.

    The MCP spec (basic/authorization) asks servers to accept uppercase scheme and host
    components; anything with a fragment is not a resource indicator (RFC 8707 §2).
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or parts.fragment or parts.username:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


class Audience:
    """One protected resource of this server.

    `canonical` is what Protected Resource Metadata publishes and what every token records.
    The built-in endpoint (`/mcp` or `/sse`) also accepts the bare origin and the other
    transport's endpoint: they name the same server, on the same issuer, so a token stays valid
    when an operator switches transports. A gateway upstream (`/mcp/NAME`, `aliases=False`)
    accepts only itself: a token for one resource is refused at every other.
    """

    ENDPOINT_PATHS = ("/mcp", "/sse")

    def __init__(self, *, issuer: str, endpoint_path: str, aliases: bool = True) -> None:
        origin = issuer.rstrip("/")
        self.canonical = origin + endpoint_path
        self._accepted = {_normalize(self.canonical)}
        if aliases:
            self._accepted |= {_normalize(origin)} | {_normalize(origin + path) for path in self.ENDPOINT_PATHS}

    def accepts(self, resource: str | None) -> bool:
        """True when `resource` is omitted or names this server (RFC 8707 §2)."""
        if resource is None or resource == self.canonical:
            return True  # the common case, on every MCP request, without parsing a URL
        normalized = _normalize(resource)
        return normalized is not None and normalized in self._accepted


class Resources:
    """Every protected resource this server serves: the built-in endpoint first (the resource of
    a request that names none), then one per gateway upstream. The authorization server issues
    tokens for exactly these, each token recording the one it was issued for (RFC 8707)."""

    def __init__(self, audiences: list[Audience]) -> None:
        if not audiences:
            raise ValueError("Resources needs the built-in endpoint's audience")
        self.default = audiences[0]
        self._audiences = audiences

    def find(self, resource: str | None) -> Audience | None:
        """The audience `resource` names (RFC 8707 §2), the default when omitted; None if not ours."""
        if resource is None:
            return self.default
        for audience in self._audiences:
            if audience.accepts(resource):
                return audience
        return None
