from __future__ import annotations

import base64
import hashlib

from auth_mcp import tokens


def _random_part(value: str, prefix: str) -> bytes:
    encoded = value.removeprefix(prefix)
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def test_access_and_refresh_tokens_carry_256_random_bits() -> None:
    assert len(_random_part(tokens.new_access_token(), tokens.ACCESS_TOKEN_PREFIX)) == 32
    assert len(_random_part(tokens.new_refresh_token(), tokens.REFRESH_TOKEN_PREFIX)) == 32


def test_authorization_codes_carry_at_least_128_random_bits_and_live_at_most_5_minutes() -> None:
    assert len(_random_part(tokens.new_authorization_code(), tokens.AUTHORIZATION_CODE_PREFIX)) * 8 >= 128
    assert tokens.AUTHORIZATION_CODE_TTL <= 300


def test_values_are_never_repeated() -> None:
    assert len({tokens.new_access_token() for _ in range(1000)}) == 1000


def test_the_database_sees_a_sha256_not_the_token() -> None:
    token = tokens.new_access_token()
    assert tokens.token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in tokens.token_hash(token)


def test_our_pkce_pair_toward_github_is_s256() -> None:
    verifier, challenge = tokens.new_pkce_pair()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    assert challenge == expected
