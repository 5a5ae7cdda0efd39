"""What GitHub sends back, parsed at the edge (pydantic), and the failures it can mean."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class TokenResponse(BaseModel):
    """`POST /login/oauth/access_token` with `Accept: application/json`.

    GitHub answers errors with HTTP 200 and an `error` field, so both shapes parse here and
    `GitHubClient` decides. `scope` is comma-separated.
    """

    model_config = ConfigDict(extra="ignore")

    access_token: SecretStr | None = None
    token_type: str | None = None
    scope: str = ""
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    refresh_token_expires_in: int | None = None
    error: str | None = None
    error_description: str | None = None


class GitHubTokens(BaseModel):
    """A successful token response: the person's GitHub token and, if it expires, its refresh token."""

    access_token: SecretStr
    scopes: tuple[str, ...]
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    refresh_token_expires_in: int | None = None


class GitHubUser(BaseModel):
    """`GET /user`. Keyed on the numeric `id`; every other field GitHub sends is kept as is."""

    model_config = ConfigDict(extra="allow")

    id: int
    login: str
    name: str | None = None
    email: str | None = None


class OrgMembership(BaseModel):
    """`GET /user/memberships/orgs/{org}`."""

    model_config = ConfigDict(extra="allow")

    state: Literal["active", "pending"] | str
    role: str | None = None


ForbiddenReason = Literal["missing_scope", "saml_sso", "ip_allow_list", "app_restricted", "forbidden"]


class GitHubError(Exception):
    """Base of everything the GitHub client raises. `str()` is safe to show a person."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached or failed (timeout, network error, 5xx): try again later."""


class GitHubOAuthError(GitHubError):
    """GitHub's OAuth endpoint refused (an `error` in an HTTP 200 body, or a 4xx)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        self.error = error
        self.description = description
        super().__init__(f"GitHub refused: {error}" + (f" ({description})" if description else ""))


class GitHubUnauthorized(GitHubError):
    """GitHub answered 401: the token is revoked, expired or evicted. The grant is dead."""


class GitHubRateLimited(GitHubError):
    def __init__(self, *, retry_at: int, secondary: bool, now: int) -> None:
        self.retry_at = retry_at
        self.secondary = secondary
        wait = max(retry_at - now, 0)
        kind = "secondary rate limit" if secondary else "rate limit"
        super().__init__(
            f"GitHub's {kind} for this person is exhausted; retry in {wait} seconds (after Unix time {retry_at})"
        )


class GitHubForbidden(GitHubError):
    def __init__(self, reason: ForbiddenReason, message: str, *, detail: dict[str, Any] | None = None) -> None:
        self.reason = reason
        self.detail = detail or {}
        super().__init__(message)


class GitHubNotFound(GitHubError):
    """404: the resource does not exist, or the token may not see it."""


class ScopesHeader(BaseModel):
    """`X-OAuth-Scopes` / `X-Accepted-OAuth-Scopes`, comma-separated."""

    granted: tuple[str, ...] = Field(default=())
    accepted: tuple[str, ...] = Field(default=())

    @classmethod
    def from_headers(cls, headers: Any) -> ScopesHeader:
        def split(value: str | None) -> tuple[str, ...]:
            return tuple(part.strip() for part in (value or "").split(",") if part.strip())

        return cls(granted=split(headers.get("x-oauth-scopes")), accepted=split(headers.get("x-accepted-oauth-scopes")))
