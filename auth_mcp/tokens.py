"""Minting and hashing of the secrets we hand out: access and refresh tokens, codes, states.

Every value is opaque and random; the database only ever sees its SHA-256. A plain (unsalted,
fast) hash is right here because the inputs carry 256 bits of entropy: nothing to brute-force.
The prefixes make our tokens recognisable to secret scanners and to people reading logs of
where a token leaked; they carry no meaning for verification.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

ACCESS_TOKEN_PREFIX = "amcp_at_"
REFRESH_TOKEN_PREFIX = "amcp_rt_"
AUTHORIZATION_CODE_PREFIX = "amcp_ac_"

# RFC 6749 §10.10 / the SDK's provider contract: codes need >= 128 bits; we use 256 everywhere.
_TOKEN_BYTES = 32

AUTHORIZATION_CODE_TTL = 300  # seconds; RFC 6749 §4.1.2 recommends at most 10 minutes
CONSENT_TTL = 600  # a consent page may be answered within 10 minutes of /authorize
UPSTREAM_STATE_TTL = 600  # GitHub codes live 10 minutes; so does our state toward GitHub


def _random(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(_TOKEN_BYTES)


def new_access_token() -> str:
    return _random(ACCESS_TOKEN_PREFIX)


def new_refresh_token() -> str:
    return _random(REFRESH_TOKEN_PREFIX)


def new_authorization_code() -> str:
    return _random(AUTHORIZATION_CODE_PREFIX)


def new_opaque_id() -> str:
    """Consent request ids, upstream states, browser nonces, grant ids."""
    return _random()


def token_hash(value: str) -> str:
    """What the database stores in place of a token, code or state (hex SHA-256)."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_pkce_pair() -> tuple[str, str]:
    """Our own RFC 7636 S256 pair toward GitHub: (verifier, challenge)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, within §4.1's 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    return verifier, challenge
