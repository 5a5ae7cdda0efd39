"""`private_key_jwt` client authentication (RFC 7523 §2.2 and §3, as OpenID Connect Core §9
profiles it) for metadata-document clients, whose public keys are in their document (`jwks`) or
at its `jwks_uri`.

An assertion authenticates its client only if it is:
- at most 8 KiB, a JWS whose `alg` is on our allow-list of asymmetric algorithms: never `none`,
  never HS*, since a "signature" keyed with a published public key proves nothing;
- signed by a key of the client's own JWK Set (chosen by `kid` when the header names one), whose
  type fits the algorithm and whose `use`/`alg`, when given, allow it;
- `iss` = `sub` = the client_id (§3 items 1 and 2);
- addressed to us: `aud` holds the issuer or the token endpoint URL (§3 item 3);
- current: `exp` present and in the future (§3 item 4), at most `MAX_LIFETIME` ahead, so that
  what we must remember is short-lived; `nbf` and `iat`, when present, not in the future;
- new: its `jti` was never presented before while it is valid (§3 item 7). The record is kept in
  the database, so a replay to another replica is refused too.
Times are checked with the injected clock, allowing `LEEWAY` seconds of clock skew.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt.exceptions import InvalidSignatureError, InvalidTokenError, PyJWKError

from auth_mcp.clock import Clock

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PRIVATE_KEY_JWT = "private_key_jwt"
# Asymmetric JWS algorithms (RFC 7518 §3.3-3.5, RFC 8037). `none` and HS* never appear here.
SIGNING_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
MAX_ASSERTION_BYTES = 8 * 1024
MAX_LIFETIME = 600  # seconds an assertion may still have to live when we see it
LEEWAY = 30  # seconds of clock skew tolerated on exp, nbf and iat
MAX_KEYS = 20  # keys considered in one JWK Set
MAX_JTI_LENGTH = 256
KEY_REFRESH_INTERVAL = 60  # at most one early refetch of a jwks_uri per minute (unknown kid)
MAX_CACHED_KEY_SETS = 200


class AssertionRefused(Exception):
    """Why a client assertion does not authenticate its client; safe to return as
    `invalid_client`'s description (it names no secret)."""


JsonFetch = Callable[[str], Awaitable[tuple[Any, float]]]
"""url -> (parsed JSON, seconds it stays fresh). The metadata-document fetcher's SSRF rules apply:
https only, public addresses only, no redirects, bounded size and time. Raises `AssertionRefused`
saying why when the URL cannot be fetched."""


class ReplayLedger(Protocol):
    """Remembers assertion ids across every replica sharing the database."""

    async def first_use(self, key: str, *, expires_at: int) -> bool:
        """Record `key` until `expires_at`; True if it was not already recorded and unexpired.

        Atomic: of two concurrent calls with the same key, exactly one gets True. Does not check
        what the key means; callers hash whatever identifies the assertion."""
        ...


@dataclass(frozen=True)
class KeySource:
    """Where a client's keys are: its document's inline `jwks`, or its `jwks_uri`."""

    client_id: str
    jwks: Any = None
    jwks_uri: str | None = None
    # The document's `token_endpoint_auth_signing_alg` (OpenID Connect Registration §2): when
    # set, assertions signed with any other algorithm are refused.
    signing_alg: str | None = None


@dataclass(frozen=True)
class _CachedKeys:
    keys: tuple[dict[str, Any], ...]
    until: float
    fetched_at: float


class ClientKeys:
    """The public keys of metadata-document clients, with `jwks_uri` sets cached for their HTTP
    freshness lifetime. An unknown `kid` triggers one early refetch per minute at most (the client
    rotated its keys), so an attacker naming random kids cannot make us fetch in a loop."""

    def __init__(self, *, fetch: JsonFetch, clock: Clock) -> None:
        self._fetch = fetch
        self._clock = clock
        self._cache: OrderedDict[str, _CachedKeys] = OrderedDict()

    async def candidates(self, source: KeySource, *, kid: str | None) -> list[dict[str, Any]]:
        if source.jwks is not None:
            return _select(_key_list(source.jwks), kid)
        if source.jwks_uri is None:
            raise AssertionRefused("the client's metadata document publishes neither jwks nor jwks_uri")
        now = self._clock.now()
        cached = self._cache.get(source.jwks_uri)
        if cached is None or cached.until <= now:
            cached = await self._load(source.jwks_uri)
        found = _select(cached.keys, kid)
        if not found and kid is not None and now - cached.fetched_at >= KEY_REFRESH_INTERVAL:
            cached = await self._load(source.jwks_uri)
            found = _select(cached.keys, kid)
        return found

    async def _load(self, url: str) -> _CachedKeys:
        document, lifetime = await self._fetch(url)
        now = self._clock.now()
        entry = _CachedKeys(keys=_key_list(document), until=now + lifetime, fetched_at=now)
        self._cache[url] = entry
        self._cache.move_to_end(url)
        while len(self._cache) > MAX_CACHED_KEY_SETS:
            self._cache.popitem(last=False)
        return entry


def _key_list(document: Any) -> tuple[dict[str, Any], ...]:
    """RFC 7517 §5: a JWK Set is an object with a `keys` array of objects."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise AssertionRefused("the client's JWK Set has no keys")
    return tuple(key for key in keys[:MAX_KEYS] if isinstance(key, dict))


def _select(keys: Sequence[dict[str, Any]], kid: str | None) -> list[dict[str, Any]]:
    return [key for key in keys if kid is None or key.get("kid") == kid]


class ClientAssertions:
    """Verifies `client_assertion`s for clients registered with `private_key_jwt`."""

    def __init__(self, *, keys: ClientKeys, ledger: ReplayLedger, clock: Clock, audiences: Sequence[str]) -> None:
        self._keys = keys
        self._ledger = ledger
        self._clock = clock
        self._audiences = list(audiences)

    async def verify(self, assertion: str, *, client_id: str, source: KeySource) -> None:
        """Return if `assertion` authenticates `client_id`; raise `AssertionRefused` saying why not."""
        if len(assertion) > MAX_ASSERTION_BYTES:
            raise AssertionRefused(f"client_assertion is longer than {MAX_ASSERTION_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(assertion)
        except InvalidTokenError:
            raise AssertionRefused("client_assertion is not a signed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in SIGNING_ALGORITHMS:
            raise AssertionRefused(f"client_assertion alg {alg!r} is not allowed; use one of {', '.join(SIGNING_ALGORITHMS)}")
        if source.signing_alg is not None and alg != source.signing_alg:
            raise AssertionRefused(f"client_assertion alg must be {source.signing_alg}, as the client's document says")
        if kid is not None and not isinstance(kid, str):
            raise AssertionRefused("client_assertion kid must be a string")
        claims = await self._signed_claims(assertion, alg=alg, kid=kid, source=source)
        expires_at = self._check_claims(claims, client_id=client_id)
        digest = hashlib.sha256(f"{client_id}\x00{claims['jti']}".encode()).hexdigest()
        if not await self._ledger.first_use(digest, expires_at=expires_at + LEEWAY):
            # RFC 7523 §3 item 7: a jti seen before, while the assertion is valid, is a replay.
            raise AssertionRefused("client_assertion was already used (its jti was seen before)")

    async def _signed_claims(self, assertion: str, *, alg: str, kid: str | None, source: KeySource) -> dict[str, Any]:
        candidates = [key for key in await self._keys.candidates(source, kid=kid) if _fits(key, alg)]
        if not candidates:
            named = f" with kid {kid!r}" if kid is not None else ""
            raise AssertionRefused(f"the client's JWK Set has no {alg} signing key{named}")
        for key in candidates:
            try:
                verifying_key = jwt.PyJWK(key, algorithm=alg)
            except (PyJWKError, ValueError, TypeError):
                continue
            try:
                # Signature and audience here; times and jti below, with our clock.
                return jwt.decode(
                    assertion,
                    key=verifying_key,
                    algorithms=[alg],
                    audience=self._audiences,
                    options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
                )
            except InvalidSignatureError:
                continue  # another key of the set may have signed it
            except jwt.InvalidAudienceError:
                raise AssertionRefused(f"client_assertion aud must name this server ({' or '.join(self._audiences)})") from None
            except jwt.MissingRequiredClaimError as exc:
                raise AssertionRefused(f"client_assertion has no {exc.claim} claim") from None
            except InvalidTokenError as exc:
                raise AssertionRefused(f"client_assertion is not valid: {exc}") from None
        raise AssertionRefused("client_assertion's signature does not verify with the client's keys")

    def _check_claims(self, claims: dict[str, Any], *, client_id: str) -> int:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            # RFC 7523 §3 items 1 and 2 (for client authentication both are the client_id).
            raise AssertionRefused("client_assertion iss and sub must both be the client_id")
        now = self._clock.now()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise AssertionRefused("client_assertion exp must be a number")
        if exp + LEEWAY <= now:
            raise AssertionRefused("client_assertion has expired")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise AssertionRefused(f"client_assertion exp is more than {MAX_LIFETIME} seconds ahead")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise AssertionRefused(f"client_assertion {name} must be a number")
            if value > now + LEEWAY:
                raise AssertionRefused(f"client_assertion {name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise AssertionRefused(f"client_assertion jti must be a string of 1 to {MAX_JTI_LENGTH} characters")
        return int(exp)


def _fits(key: dict[str, Any], alg: str) -> bool:
    """A public signing key whose type matches `alg` (RFC 7517 §4.2-4.3 `use` and `alg`)."""
    if key.get("kty") != _KEY_TYPES.get(alg[:2]) or "d" in key:
        return False  # wrong type, or private key material published by mistake
    if key.get("use") not in (None, "sig"):
        return False
    return key.get("alg") in (None, alg)

