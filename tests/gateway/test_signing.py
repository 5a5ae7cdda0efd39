"""Identity tokens: ES256, derived keys shared by replicas, rotation with overlap, RFC 9068 claims."""

from __future__ import annotations

import hashlib

import jwt
import pytest

from auth_mcp.gateway.identity import Caller, IdentityTokens
from auth_mcp.gateway.signing import SigningKeys
from tests.support.clock import FakeClock

OLD, NEW = hashlib.sha384(b"old").digest(), hashlib.sha384(b"new").digest()
CALLER = Caller(grant_id="g1", github_user_id=583231, github_login="octocat", client_id="c1", scopes=("read:user", "read:org"))
ISSUER = "https://mcp.example.com"
AUDIENCE = "https://notes.internal/mcp"


def verify(token: str, keys: SigningKeys, *, now: float | None = None) -> dict:
    jwk_set = jwt.PyJWKSet.from_dict(keys.jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwk_set.keys if k.key_id == kid)
    options = {"require": ["iss", "aud", "sub", "exp", "iat", "jti"]}
    return jwt.decode(token, key, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER, options=options)


def test_an_identity_token_carries_the_rfc_9068_claims_and_header() -> None:
    keys = SigningKeys(seeds_newest_first=[NEW])
    clock = FakeClock()
    token = IdentityTokens(keys=keys, issuer=ISSUER, clock=clock).for_upstream(CALLER, AUDIENCE)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": keys.signing_kid}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["sub"] == "583231" and claims["login"] == "octocat" and claims["client_id"] == "c1"
    assert claims["scope"] == "read:user read:org"
    assert claims["exp"] - claims["iat"] == 300 and len(claims["jti"]) >= 16
    verify(token, keys)


def test_replicas_with_the_same_secret_publish_the_same_keys() -> None:
    assert SigningKeys(seeds_newest_first=[NEW]).jwks == SigningKeys(seeds_newest_first=[NEW]).jwks
    assert SigningKeys(seeds_newest_first=[NEW]).jwks != SigningKeys(seeds_newest_first=[OLD]).jwks


def test_the_key_id_is_the_rfc_7638_thumbprint() -> None:
    keys = SigningKeys(seeds_newest_first=[NEW])
    (jwk,) = keys.jwks["keys"]
    assert jwk["kid"] == jwt.PyJWK.from_dict(jwk).key_id
    # RFC 7638 §3.1's construction, by hand.
    import base64
    import json

    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    assert jwk["kid"] == base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).decode().rstrip("=")
    assert "d" not in jwk  # never the private part


def test_a_rotation_publishes_the_next_key_before_signing_with_it() -> None:
    clock = FakeClock()
    before = IdentityTokens(keys=SigningKeys(seeds_newest_first=[OLD]), issuer=ISSUER, clock=clock).for_upstream(CALLER, AUDIENCE)
    publishing = SigningKeys(seeds_newest_first=[OLD, NEW])  # step 1: OLD,NEW
    signing_new = SigningKeys(seeds_newest_first=[NEW, OLD])  # step 2: NEW,OLD
    assert {k["kid"] for k in publishing.jwks["keys"]} == {k["kid"] for k in signing_new.jwks["keys"]}
    after = IdentityTokens(keys=signing_new, issuer=ISSUER, clock=clock).for_upstream(CALLER, AUDIENCE)
    # An upstream holding the JWK Set of step 1 verifies tokens of both steps.
    verify(before, publishing)
    verify(after, publishing)
    assert jwt.get_unverified_header(after)["kid"] == SigningKeys(seeds_newest_first=[NEW]).signing_kid
    # Step 3 (NEW only): the old key is gone, so tokens it signed are refused.
    with pytest.raises(StopIteration):
        verify(before, SigningKeys(seeds_newest_first=[NEW]))


def test_a_token_is_reused_until_a_minute_before_it_expires() -> None:
    clock = FakeClock()
    tokens = IdentityTokens(keys=SigningKeys(seeds_newest_first=[NEW]), issuer=ISSUER, clock=clock)
    first = tokens.for_upstream(CALLER, AUDIENCE)
    clock.advance(239)
    assert tokens.for_upstream(CALLER, AUDIENCE) == first
    clock.advance(1)
    renewed = tokens.for_upstream(CALLER, AUDIENCE)
    assert renewed != first
    assert jwt.decode(renewed, options={"verify_signature": False})["exp"] > clock.now() + 60


def test_tokens_for_other_audiences_or_scopes_are_distinct() -> None:
    tokens = IdentityTokens(keys=SigningKeys(seeds_newest_first=[NEW]), issuer=ISSUER, clock=FakeClock())
    one = tokens.for_upstream(CALLER, AUDIENCE)
    other = tokens.for_upstream(CALLER, "https://other.internal/mcp")
    narrower_caller = Caller(grant_id="g1", github_user_id=583231, github_login="octocat", client_id="c1", scopes=("read:user",))
    narrower = tokens.for_upstream(narrower_caller, AUDIENCE)
    assert len({one, other, narrower}) == 3
    assert jwt.decode(other, options={"verify_signature": False})["aud"] == "https://other.internal/mcp"
