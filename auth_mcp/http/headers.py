"""Request headers on the hot path: read once per request, whoever asks first."""

from __future__ import annotations

from starlette.types import Scope

_MEMO = "auth_mcp.http.headers"


def request_headers(scope: Scope) -> dict[bytes, bytes]:
    """Each request header's first value, by name (ASGI gives names in lower case).

    The access log, the Host/Origin check and the bearer check each read a few headers of
    every tool call; looping over all headers in Python in each of them cost more than the
    checks themselves (callgrind). So the mapping is built once, in C by `dict()` (reversed,
    so that the first of a repeated header wins), and kept in the scope together with the
    header list it was built from: a layer that replaces the list gets a fresh mapping.
    """
    raw = scope["headers"]
    memo = scope.get(_MEMO)
    if memo is not None and memo[0] is raw:
        return memo[1]
    values = dict(reversed(raw))
    scope[_MEMO] = (raw, values)
    return values


def remove_header(scope: Scope, name: bytes) -> None:
    """Take every `name` header out of the request, and out of the mapping above."""
    scope["headers"] = [header for header in scope["headers"] if header[0] != name]
    scope.pop(_MEMO, None)
