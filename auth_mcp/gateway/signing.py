"""The keys that sign the identity tokens upstreams receive, and their public JWK Set.

Keys are ES256 (ECDSA on P-256, RFC 7518 §3.4), derived deterministically from the configured
secrets (`AUTH_MCP_SECRET_KEY`, newest first): every replica with the same secrets holds the same
keys, and nothing is stored. The newest secret's key signs; every configured secret's key is
published at `jwks_uri`, so rotating with overlap is
`OLD` → `OLD,NEW` (NEW published, OLD signs) → `NEW,OLD` (NEW signs; tokens signed by OLD still
verify) → `NEW` once the longest identity-token lifetime has passed (README, "Keys").
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
# The order of P-256's base point (SEC 2 §2.4.2): a private scalar lies in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SEED_BYTES = 48  # 128 bits more than the order, so reducing modulo n is unbiased in practice


def _b64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    private: ec.EllipticCurvePrivateKey
    public_jwk: Mapping[str, str]


def _key_from_seed(seed: bytes) -> _Key:
    if len(seed) < SEED_BYTES:
        raise ValueError(f"a signing-key seed needs {SEED_BYTES} bytes")
    scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    # RFC 7638 §3: the thumbprint hashes the required members, sorted, without whitespace.
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64url(hashlib.sha256(canonical).digest())
    return _Key(kid=kid, private=private, public_jwk={**members, "kid": kid, "use": "sig", "alg": ALGORITHM})


class SigningKeys:
    """ES256 keys from seeds (newest first): the first signs, all are published."""

    def __init__(self, *, seeds_newest_first: Sequence[bytes]) -> None:
        if not seeds_newest_first:
            raise ValueError("SigningKeys needs at least one seed")
        keys = [_key_from_seed(seed) for seed in seeds_newest_first]
        self._signing = keys[0]
        unique = {key.kid: key for key in reversed(keys)}  # one entry per distinct key, newest first
        self._jwks = {"keys": [dict(unique[kid].public_jwk) for kid in dict.fromkeys(key.kid for key in keys)]}
        self.jwks_json = json.dumps(self._jwks, separators=(",", ":")).encode()

    @property
    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5) served at jwks_uri."""
        return json.loads(self.jwks_json)

    @property
    def signing_kid(self) -> str:
        return self._signing.kid

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        """A compact JWS over `claims` with the newest key."""
        headers = {"typ": typ, "kid": self._signing.kid}
        return jwt.encode(dict(claims), self._signing.private, algorithm=ALGORITHM, headers=headers)
