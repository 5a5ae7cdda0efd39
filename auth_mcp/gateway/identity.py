"""The identity token an upstream receives instead of the client's MCP token (RFC 9068).

`Authorization: Bearer <JWT>` with header `typ: at+jwt` (RFC 9068 §2.1) and the claims of
§2.2: `iss` (our issuer), `aud` (the upstream's configured url, so a token minted for one
upstream is refused by every other), `sub` (the person's GitHub numeric id, as a string: logins
can be renamed), `client_id`, `scope` (space-separated), `iat`, `exp` (minutes, not hours), `jti`;
plus `login` for display. An upstream verifies it against `jwks_uri` with any JWT library.

Signing costs far more than the rest of a forwarded call, so a token is reused for the same
grant, client, scopes and upstream until shortly before it expires (`REUSE_MARGIN`).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from auth_mcp.clock import Clock
from auth_mcp.gateway.signing import SigningKeys

TOKEN_TYPE = "at+jwt"
LIFETIME = 300  # seconds; an upstream never holds a credential for long
REUSE_MARGIN = 60  # a cached token is replaced this long before it expires
MAX_CACHED = 50_000


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the bearer guard verified it."""

    grant_id: str
    github_user_id: int
    github_login: str
    client_id: str
    scopes: tuple[str, ...]


class IdentityTokens:
    """Signs, and briefly reuses, identity tokens for upstreams."""

    def __init__(self, *, keys: SigningKeys, issuer: str, clock: Clock, lifetime: int = LIFETIME) -> None:
        if lifetime <= REUSE_MARGIN:
            raise ValueError(f"identity tokens must live longer than {REUSE_MARGIN} s")
        self._keys = keys
        self._issuer = issuer
        self._clock = clock
        self._lifetime = lifetime
        self._cache: OrderedDict[tuple[str, str, str, tuple[str, ...]], tuple[str, float]] = OrderedDict()

    @property
    def lifetime(self) -> int:
        return self._lifetime

    def for_upstream(self, caller: Caller, audience: str) -> str:
        key = (audience, caller.grant_id, caller.client_id, caller.scopes)
        now = self._clock.now()
        cached = self._cache.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        issued_at = int(now)
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": str(caller.github_user_id),
            "login": caller.github_login,
            "client_id": caller.client_id,
            "scope": " ".join(caller.scopes),
            "iat": issued_at,
            "exp": issued_at + self._lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        token = self._keys.sign(claims, typ=TOKEN_TYPE)
        self._cache[key] = (token, issued_at + self._lifetime - REUSE_MARGIN)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return token
