"""Request headers on the hot path: read once per request, whoever asks first."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.types import Scope

_MEMO = "auth_mcp.http.headers"
K = TypeVar("K")
V = TypeVar("V")


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


def remove_header(scope: Scope, name: bytes, values: dict[bytes, bytes] | None = None) -> None:
    """Take every `name` header out of the request, and out of the mapping above (`values`, when
    the caller has it already)."""
    raw = scope["headers"]
    if values is None:
        values = request_headers(scope)
    first = values.get(name)
    if first is None:
        return
    if len(values) == len(raw):
        # No header name repeats (the common case): the one `name` header goes, copied in C.
        headers = list(raw)
        headers.remove((name, first))
    else:
        headers = [header for header in raw if header[0] != name]
    del values[name]
    scope["headers"] = headers
    scope[_MEMO] = (headers, values)


class BoundedMemo(dict[K, V]):
    """Answers remembered per header value(s), for the hot path's `memo.get(key)`: it stops growing
    at `limit` entries and keeps no key of over `max_bytes`, so a stranger sending ever new or
    ever longer values cannot grow it without end (past the bounds: no memo, the answer is
    worked out every time)."""

    __slots__ = ("_limit", "_max_bytes")

    def __init__(self, *, limit: int = 1024, max_bytes: int = 512) -> None:
        super().__init__()
        self._limit = limit
        self._max_bytes = max_bytes

    def keep(self, key: K, value: V, size: int) -> V:
        """`value`, remembered for `key` (of `size` bytes) while the bounds allow."""
        if size <= self._max_bytes and len(self) < self._limit:
            self[key] = value
        return value


class Decisions:
    """`check(value)` of a header, remembered per raw value: clients repeat the same few Host
    and Origin headers, and parsing one costs more than the rest of a check."""

    def __init__(self, check: Callable[[str | None], bool], *, limit: int = 1024) -> None:
        self._check = check
        self._known: BoundedMemo[bytes | None, bool] = BoundedMemo(limit=limit)

    def __call__(self, raw: bytes | None) -> bool:
        known = self._known.get(raw)
        if known is None:
            known = self._known.keep(raw, self._check(None if raw is None else raw.decode("latin-1")), len(raw or b""))
        return known
