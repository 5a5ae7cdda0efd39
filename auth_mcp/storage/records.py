"""Rows as the rest of the program sees them: plain frozen values, hashes instead of secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    info: dict[str, Any]  # RFC 7591 client information, without the secret
    client_secret_enc: str | None
    created_at: int
    used_at: int | None


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """An /authorize request between the consent page and GitHub's callback."""

    request_hash: str
    client_id: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    code_challenge: str
    client_state: str | None
    scopes: tuple[str, ...]
    resource: str
    created_at: int
    expires_at: int
    # Set once the person approved.
    upstream_state_hash: str | None = None
    github_verifier_enc: str | None = None
    # Set once GitHub's callback finished the sign-in (the row stays until it expires).
    consumed_at: int | None = None


@dataclass(frozen=True, slots=True)
class GitHubCredentials:
    """The person's GitHub token (encrypted) and, for expiring tokens, its refresh token."""

    token_enc: str
    token_expires_at: int | None
    refresh_token_enc: str | None
    refresh_expires_at: int | None
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    """One person's authorization of one client: what every MCP token is issued from."""

    grant_id: str
    client_id: str
    client_name: str | None
    github_user_id: int
    github_login: str
    scopes: tuple[str, ...]
    resource: str
    github: GitHubCredentials
    created_at: int
    expires_at: int
    refresh_lease_until: int | None = None


@dataclass(frozen=True, slots=True)
class CodeRecord:
    code_hash: str
    grant_id: str
    client_id: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str
    expires_at: int
    used_at: int | None


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """An access token joined with the identity of its grant: all that verification needs."""

    token_hash: str
    grant_id: str
    client_id: str
    client_name: str | None
    scopes: tuple[str, ...]
    resource: str
    expires_at: int
    github_user_id: int
    github_login: str


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    token_hash: str
    grant_id: str
    client_id: str
    scopes: tuple[str, ...]
    resource: str
    expires_at: int
    rotated_at: int | None


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A freshly minted pair, as hashes, ready to be stored."""

    access_hash: str
    access_expires_at: int
    refresh_hash: str
    refresh_expires_at: int
    scopes: tuple[str, ...]  # the access token's
    resource: str
    # The refresh token's scopes, when they differ from the access token's: RFC 6749 §6, a
    # refresh that asks for fewer scopes narrows that access token only.
    refresh_scopes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    pending_authorizations: int = 0
    authorization_codes: int = 0
    access_tokens: int = 0
    refresh_tokens: int = 0
    grants: int = 0
    clients: int = 0

    @property
    def total(self) -> int:
        return (
            self.pending_authorizations
            + self.authorization_codes
            + self.access_tokens
            + self.refresh_tokens
            + self.grants
            + self.clients
        )
