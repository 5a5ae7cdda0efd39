"""private_key_jwt (RFC 7523 §2.2, §3): what a client assertion must be to authenticate its client."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth_mcp.authorization.client_assertion import AssertionRefused, ClientAssertions, ClientKeys, KeySource
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import prepare_schema
from auth_mcp.storage.replay import SqlReplayLedger
from tests.support.clock import FakeClock

CLIENT_ID = "https://chatgpt.com/oauth/client.json"
JWKS_URI = "https://chatgpt.com/oauth/jwks.json"
ISSUER = "http://127.0.0.1:8000"
TOKEN_URL = ISSUER + "/token"


class SigningKey:
    """A client's RSA (or EC) key pair, with its public JWK."""

    def __init__(self, kid: str, *, curve: bool = False) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1()) if curve else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.alg = "ES256" if curve else "RS256"
        algorithm = jwt.algorithms.ECAlgorithm if curve else jwt.algorithms.RSAAlgorithm
        self.jwk: dict[str, Any] = {**algorithm.to_jwk(self.private.public_key(), as_dict=True), "kid": kid, "use": "sig"}

    def sign(self, clock: FakeClock, *, alg: str | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(clock.now())
        body = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": TOKEN_URL, "iat": now, "exp": now + 300, "jti": secrets.token_hex(8), **claims}
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.private, algorithm=alg or self.alg, headers={"kid": self.kid, **(headers or {})})


class KeyServer:
    """The client's jwks_uri on a fake network: what it serves and how often it was asked."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0

    async def fetch(self, url: str) -> tuple[Any, float]:
        assert url == JWKS_URI
        self.fetches += 1
        return {"keys": [key.jwk for key in self.keys]}, 3600.0


@contextlib.asynccontextmanager
async def verifier(db_url: str, server: KeyServer, clock: FakeClock) -> AsyncIterator[ClientAssertions]:
    engine = create_engine(db_url)
    await prepare_schema(engine, upgrade_outdated=True)
    try:
        yield ClientAssertions(
            keys=ClientKeys(fetch=server.fetch, clock=clock),
            ledger=SqlReplayLedger(engine=engine, clock=clock),
            clock=clock,
            audiences=[ISSUER, TOKEN_URL],
        )
    finally:
        await engine.dispose()


SOURCE = KeySource(client_id=CLIENT_ID, jwks_uri=JWKS_URI)


async def test_an_assertion_signed_with_a_key_at_the_jwks_uri_authenticates_the_client(db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    async with verifier(db_url, KeyServer(key), clock) as assertions:
        await assertions.verify(key.sign(clock), client_id=CLIENT_ID, source=SOURCE)
        await assertions.verify(key.sign(clock, aud=ISSUER), client_id=CLIENT_ID, source=SOURCE)
        await assertions.verify(key.sign(clock, aud=["https://elsewhere.example", ISSUER]), client_id=CLIENT_ID, source=SOURCE)


async def test_inline_jwks_in_the_document_work_without_a_fetch(db_url: str) -> None:
    clock, key, server = FakeClock(), SigningKey("k1", curve=True), KeyServer()
    async with verifier(db_url, server, clock) as assertions:
        await assertions.verify(key.sign(clock), client_id=CLIENT_ID, source=KeySource(client_id=CLIENT_ID, jwks={"keys": [key.jwk]}))
    assert server.fetches == 0


async def test_a_replayed_assertion_is_refused_also_by_another_replica(any_db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    assertion = key.sign(clock)
    async with verifier(any_db_url, KeyServer(key), clock) as first, verifier(any_db_url, KeyServer(key), clock) as second:
        await first.verify(assertion, client_id=CLIENT_ID, source=SOURCE)
        with pytest.raises(AssertionRefused, match="already used"):
            await first.verify(assertion, client_id=CLIENT_ID, source=SOURCE)
        with pytest.raises(AssertionRefused, match="already used"):
            await second.verify(assertion, client_id=CLIENT_ID, source=SOURCE)


async def test_the_same_jti_is_refused_while_valid_and_usable_once_its_record_expired(any_db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    async with verifier(any_db_url, KeyServer(key), clock) as assertions:
        await assertions.verify(key.sign(clock, jti="fixed", exp=int(clock.now()) + 60), client_id=CLIENT_ID, source=SOURCE)
        with pytest.raises(AssertionRefused, match="already used"):
            await assertions.verify(key.sign(clock, jti="fixed", exp=int(clock.now()) + 120), client_id=CLIENT_ID, source=SOURCE)
        clock.advance(200)  # the first assertion (and its leeway) has expired
        await assertions.verify(key.sign(clock, jti="fixed"), client_id=CLIENT_ID, source=SOURCE)


def _forged(clock: FakeClock, alg: str, secret: bytes) -> str:
    """A JWS built by hand, as an attacker would: alg none, or HS256 keyed with public material."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(clock.now())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": TOKEN_URL, "exp": now + 300, "jti": secrets.token_hex(8)}
    signing_input = f"{part({'alg': alg, 'kid': 'k1', 'typ': 'JWT'})}.{part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


async def test_unsigned_and_symmetric_assertions_are_refused(db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    public_pem = key.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    async with verifier(db_url, KeyServer(key), clock) as assertions:
        # alg none: no signature at all.
        with pytest.raises(AssertionRefused, match="alg 'none' is not allowed"):
            await assertions.verify(_forged(clock, "none", b""), client_id=CLIENT_ID, source=SOURCE)
        # HS256 keyed with the published public key: anyone could compute it.
        with pytest.raises(AssertionRefused, match="alg 'HS256' is not allowed"):
            await assertions.verify(_forged(clock, "HS256", public_pem), client_id=CLIENT_ID, source=SOURCE)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "https://other-server.example/token"}, "aud must name this server"),
        ({"iss": "https://evil.example/client.json"}, "iss and sub must both be the client_id"),
        ({"sub": "someone"}, "iss and sub must both be the client_id"),
        ({"exp": None}, "no exp claim"),
        ({"jti": None}, "no jti claim"),
        ({"jti": ""}, "jti must be a string"),
        ({"exp": "soon"}, "exp must be a number|not valid"),
        ({"exp": 10**12}, "more than 600 seconds ahead"),
        ({"nbf": 10**12}, "nbf is in the future"),
    ],
)
async def test_assertions_with_wrong_claims_are_refused_with_the_reason(db_url: str, claims: dict[str, Any], message: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    async with verifier(db_url, KeyServer(key), clock) as assertions:
        with pytest.raises(AssertionRefused, match=message):
            await assertions.verify(key.sign(clock, **claims), client_id=CLIENT_ID, source=SOURCE)


async def test_an_expired_assertion_is_refused(db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    async with verifier(db_url, KeyServer(key), clock) as assertions:
        assertion = key.sign(clock, exp=int(clock.now()) + 10)
        clock.advance(41)
        with pytest.raises(AssertionRefused, match="expired"):
            await assertions.verify(assertion, client_id=CLIENT_ID, source=SOURCE)


async def test_a_key_not_in_the_clients_set_does_not_authenticate(db_url: str) -> None:
    clock, published, stranger = FakeClock(), SigningKey("k1"), SigningKey("k1")
    async with verifier(db_url, KeyServer(published), clock) as assertions:
        with pytest.raises(AssertionRefused, match="signature does not verify"):
            await assertions.verify(stranger.sign(clock), client_id=CLIENT_ID, source=SOURCE)
        with pytest.raises(AssertionRefused, match="no ES256 signing key"):
            await assertions.verify(SigningKey("k1", curve=True).sign(clock), client_id=CLIENT_ID, source=SOURCE)


async def test_a_rotated_key_is_fetched_once_but_unknown_kids_cannot_force_refetches(db_url: str) -> None:
    clock, old, new = FakeClock(), SigningKey("old"), SigningKey("new")
    server = KeyServer(old)
    async with verifier(db_url, server, clock) as assertions:
        await assertions.verify(old.sign(clock), client_id=CLIENT_ID, source=SOURCE)
        server.keys = [old, new]  # the client rotates
        clock.advance(61)
        await assertions.verify(new.sign(clock), client_id=CLIENT_ID, source=SOURCE)
        assert server.fetches == 2
        for _ in range(5):
            with pytest.raises(AssertionRefused, match="no RS256 signing key with kid 'random'"):
                await assertions.verify(SigningKey("random").sign(clock), client_id=CLIENT_ID, source=SOURCE)
        assert server.fetches == 2


async def test_oversized_or_malformed_assertions_are_refused(db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    async with verifier(db_url, KeyServer(key), clock) as assertions:
        with pytest.raises(AssertionRefused, match="longer than"):
            await assertions.verify("a" * 9000, client_id=CLIENT_ID, source=SOURCE)
        with pytest.raises(AssertionRefused, match="not a signed JWT"):
            await assertions.verify("not.a-jwt", client_id=CLIENT_ID, source=SOURCE)


async def test_the_documents_signing_algorithm_is_the_only_one_accepted(db_url: str) -> None:
    clock, key = FakeClock(), SigningKey("k1")
    pinned = KeySource(client_id=CLIENT_ID, jwks_uri=JWKS_URI, signing_alg="PS256")
    async with verifier(db_url, KeyServer(key), clock) as assertions:
        with pytest.raises(AssertionRefused, match="alg must be PS256"):
            await assertions.verify(key.sign(clock), client_id=CLIENT_ID, source=pinned)
        await assertions.verify(key.sign(clock, alg="PS256"), client_id=CLIENT_ID, source=pinned)


async def test_expired_assertion_records_are_purged(db_url: str) -> None:
    clock = FakeClock()
    engine = create_engine(db_url)
    await prepare_schema(engine, upgrade_outdated=True)
    ledger = SqlReplayLedger(engine=engine, clock=clock)
    try:
        assert await ledger.first_use("a" * 64, expires_at=int(clock.now()) + 60)
        assert await ledger.purge_expired() == 0
        clock.advance(61)
        assert await ledger.purge_expired() == 1
    finally:
        await engine.dispose()
