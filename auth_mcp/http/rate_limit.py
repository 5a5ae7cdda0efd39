"""Per-client-IP rate limits on the endpoints strangers can call without a token.

Token buckets in process memory: each replica limits what it sees (with N replicas behind a
round-robin balancer a client gets at most N times the budget, which still bounds abuse). The
client address is the TCP peer, or the `X-Forwarded-For` entry added by a proxy listed in
`AUTH_MCP_TRUSTED_PROXIES` (uvicorn's ProxyHeadersMiddleware, installed in app.py); a header
from anyone else is ignored, so it cannot be forged to dodge the limit. The MCP endpoint has no
request limit, only a budget for failed bearer checks (`FailureBudget`).
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from auth_mcp.clock import Clock
from auth_mcp.http.headers import request_headers
from auth_mcp.http.negotiation import prefers_html
from auth_mcp.http.pages import Pages

MAX_TRACKED_CLIENTS = 100_000
BEARER_FAILURES = "bearer-failures"


@dataclass(frozen=True)
class Limit:
    per_minute: float

    @property
    def capacity(self) -> float:
        return self.per_minute

    @property
    def refill_per_second(self) -> float:
        return self.per_minute / 60.0


def default_limits(per_minute: int) -> dict[str, Limit]:
    """Budgets per path. Registration is the cheapest to abuse (it stores rows), so it gets least."""
    return {
        # A client registers once per installation; each registration is a stored row. 151 a
        # minute per address were possible with a quarter: a sixtieth is 10 at the default.
        "/register": Limit(max(per_minute / 60, 1)),
        "/token": Limit(per_minute),
        "/revoke": Limit(per_minute),
        "/authorize": Limit(per_minute),
        "/consent": Limit(per_minute),
        "/github/callback": Limit(per_minute),
        "/account": Limit(per_minute),
        "/account/sign-in": Limit(per_minute),
        "/account/revoke": Limit(per_minute),
        "/account/sign-out": Limit(per_minute),
        "/github/callback/account": Limit(per_minute),
        # Unknown bearer tokens on the MCP endpoint: each costs a database query (resource/bearer.py).
        BEARER_FAILURES: Limit(per_minute),
    }


class TokenBuckets:
    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def take(self, key: tuple[str, str], limit: Limit) -> float:
        """Spend one token; returns 0 if allowed, else the seconds until one is available."""
        now = self._clock.now()
        tokens, updated = self._buckets.get(key, (limit.capacity, now))
        tokens = min(limit.capacity, tokens + (now - updated) * limit.refill_per_second)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / limit.refill_per_second

    def wait(self, key: tuple[str, str], limit: Limit) -> float:
        """Seconds until `key` may spend a token (0: now), without spending one."""
        state = self._buckets.get(key)
        if state is None:
            return 0.0
        tokens, updated = state
        tokens = min(limit.capacity, tokens + (self._clock.now() - updated) * limit.refill_per_second)
        return 0.0 if tokens >= 1 else (1 - tokens) / limit.refill_per_second


class FailureBudget:
    """A per-address budget for failures that cost us work, such as unknown bearer tokens (each
    one a database query): spent only by failures, so an address's successful requests go on.

    `exhausted` is asked before the costly work, `spend` after it failed; requests in flight
    together may overshoot the budget by their number, which bounds nothing worse.
    """

    def __init__(self, *, name: str, limit: Limit, buckets: TokenBuckets) -> None:
        self._name = name
        self._limit = limit
        self._buckets = buckets

    def exhausted(self, scope: Scope) -> float:
        """Seconds until the address behind this request may fail again (0: it may now)."""
        return self._buckets.wait((client_bucket(scope), self._name), self._limit)

    def spend(self, scope: Scope) -> None:
        self._buckets.take((client_bucket(scope), self._name), self._limit)


def too_many_requests(retry_after: float) -> JSONResponse:
    """A 429 (RFC 6585 §4) with `Retry-After` in whole seconds."""
    seconds = str(max(1, math.ceil(retry_after)))
    body = {"error": "temporarily_unavailable", "error_description": f"Too many requests; retry in {seconds} seconds"}
    return JSONResponse(body, status_code=429, headers={"retry-after": seconds, "cache-control": "no-store"})


class RateLimit:
    """Wraps one endpoint: 429 with `Retry-After` once a client IP's bucket for it is empty.

    The refusal is an OAuth-style JSON error for programs, and a page for a person's browser
    (an Accept header that prefers HTML), which would otherwise show raw JSON.
    """

    def __init__(self, app: ASGIApp, *, name: str, limit: Limit, buckets: TokenBuckets, pages: Pages | None = None) -> None:
        self._app = app
        self._name = name
        self._limit = limit
        self._buckets = buckets
        self._pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self._app(scope, receive, send)
            return
        wait = self._buckets.take((client_bucket(scope), self._name), self._limit)
        if wait <= 0:
            await self._app(scope, receive, send)
            return
        retry_after = str(max(1, math.ceil(wait)))
        if self._pages is not None and prefers_html(request_headers(scope).get(b"accept", b"").decode("latin-1")):
            page = self._pages.error(
                status_code=429,
                title="Too many requests",
                message="This server received too many requests from your network in the last minute.",
                hint=f"Wait {retry_after} seconds, then reload this page.",
                error="temporarily_unavailable",
            )
            page.headers["Retry-After"] = retry_after
            await page(scope, receive, send)
            return
        await too_many_requests(wait)(scope, receive, send)


def client_bucket(scope: Scope) -> str:
    """Whose budget a request spends: its client address (see the module docstring)."""
    client = scope.get("client")
    return address_bucket(client[0] if client else "unknown")


def address_bucket(address: str) -> str:
    """What counts as one client address: IPv6 per /64 (one host can use all of it), IPv4 per address."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    except ValueError:
        return address
