"""The GitHub client: OAuth (authorize URL, code exchange, refresh, revocation) and REST reads.

httpx is injected, so tests fake GitHub at the HTTP edge (respx) and production shares one
connection pool. Every failure becomes a typed `GitHubError` that says what happened; nothing
is collapsed into "invalid token", and no token ever reaches a log line.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from auth_mcp.clock import Clock
from auth_mcp.github.backoff import RateLimitBackoff
from auth_mcp.github.etags import CachedResponse, ETagCache
from auth_mcp.github.models import (
    GitHubError,
    GitHubForbidden,
    GitHubNotFound,
    GitHubOAuthError,
    GitHubRateLimited,
    GitHubTokens,
    GitHubUnauthorized,
    GitHubUnavailable,
    GitHubUser,
    OrgMembership,
    ScopesHeader,
    TokenResponse,
)
from auth_mcp.tokens import token_hash

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"  # pinned X-GitHub-Api-Version; also served by GitHub Enterprise Server
USER_AGENT = "auth-mcp/0.1 (+https://github.com/auth-mcp/auth-mcp)"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# GitHub: "wait at least one minute" before retrying after a secondary rate limit without retry-after.
_SECONDARY_LIMIT_PAUSE = 60
# While a person is rate limited, a cached response GitHub sent or confirmed this recently
# answers in GitHub's place; an older one would pass off stale data as current.
ETAG_FRESH_FOR = 300

M = TypeVar("M", bound=BaseModel)

ApiObserver = Callable[[str, int | None, str | None], None]
"""Called after each GitHub call with (endpoint label, HTTP status or None, x-ratelimit-remaining)."""


class GitHub(Protocol):
    """GitHub as the rest of the program uses it.

    Guarantees: methods either return parsed data or raise a `GitHubError` subclass; reads
    that can be conditional are; after GitHub answers "rate limited", no read for that person
    (`person`, else the token) is sent before the time GitHub gave: a response cached in the
    last `ETAG_FRESH_FOR` seconds answers instead, or `GitHubRateLimited` with the time left.
    Does not: retry, refresh tokens on its own, or decide what a 401 means for a grant
    (github/person.py does).
    """

    def authorize_url(self, *, redirect_uri: str, scopes: Sequence[str], state: str, code_challenge: str) -> str: ...
    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> GitHubTokens: ...
    async def refresh(self, refresh_token: str) -> GitHubTokens: ...
    async def get_json(self, token: str, path: str, *, person: str | None = None) -> Any: ...
    async def get_model(self, token: str, path: str, model: type[M], *, person: str | None = None) -> M: ...
    async def get_user(self, token: str) -> GitHubUser: ...
    async def get_org_membership(self, token: str, org: str) -> OrgMembership | None: ...
    async def revoke_token(self, token: str) -> None: ...


class GitHubClient:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        web_url: str,
        api_url: str,
        client_id: str,
        client_secret: SecretStr,
        clock: Clock,
        etags: ETagCache | None = None,
        observer: ApiObserver | None = None,
        backoff: RateLimitBackoff | None = None,
    ) -> None:
        self._http = http
        self._web_url = web_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._etags = etags if etags is not None else ETagCache()
        self._backoff = backoff if backoff is not None else RateLimitBackoff(clock=clock)
        self._observer = observer
        # What every REST read sends but the token (and If-None-Match): built once, not per call.
        self._read_headers = {"User-Agent": USER_AGENT, **self._api_headers()}

    @property
    def client_id(self) -> str:
        return self._client_id

    # OAuth -----------------------------------------------------------------------------------

    def authorize_url(self, *, redirect_uri: str, scopes: Sequence[str], state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": state,
                # RFC 7636 toward GitHub (supported since July 2025): our own S256 pair.
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "allow_signup": "true",
            }
        )
        return f"{self._web_url}/login/oauth/authorize?{query}"

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> GitHubTokens:
        return await self._token_request(
            {"code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}, label="exchange"
        )

    async def refresh(self, refresh_token: str) -> GitHubTokens:
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, label="refresh")

    async def _token_request(self, form: dict[str, str], *, label: str) -> GitHubTokens:
        data = {"client_id": self._client_id, "client_secret": self._client_secret.get_secret_value(), **form}
        url = f"{self._web_url}/login/oauth/access_token"
        response = await self._send("POST", url, label=f"oauth.{label}", data=data, headers={"Accept": "application/json"})
        if response.status_code >= 500 or response.status_code == 429:
            raise GitHubUnavailable(f"GitHub's token endpoint answered HTTP {response.status_code}")
        try:
            parsed = TokenResponse.model_validate(response.json())
        except (json.JSONDecodeError, ValidationError, ValueError):
            raise GitHubUnavailable(
                f"GitHub's token endpoint answered HTTP {response.status_code} with a body that is not a token response"
            ) from None
        # GitHub reports OAuth errors as HTTP 200 with an `error` field: always check the body.
        if parsed.error:
            raise GitHubOAuthError(parsed.error, parsed.error_description)
        if response.status_code != 200 or parsed.access_token is None:
            raise GitHubOAuthError("invalid_response", f"HTTP {response.status_code} without an access_token")
        return GitHubTokens(
            access_token=parsed.access_token,
            scopes=tuple(s.strip() for s in parsed.scope.split(",") if s.strip()),
            expires_in=parsed.expires_in,
            refresh_token=parsed.refresh_token,
            refresh_token_expires_in=parsed.refresh_token_expires_in,
        )

    async def revoke_token(self, token: str) -> None:
        """`DELETE /applications/{client_id}/token`: GitHub forgets this one token (204, or 404 if gone)."""
        url = f"{self._api_url}/applications/{quote(self._client_id, safe='')}/token"
        response = await self._send(
            "DELETE",
            url,
            label="applications.token.delete",
            json={"access_token": token},
            auth=(self._client_id, self._client_secret.get_secret_value()),
            headers=self._api_headers(),
        )
        if response.status_code in (204, 404, 422):
            # 404/422: the token is already gone (revoked by the person, or evicted): nothing to do.
            return
        self._raise_for_api_status(response)

    # REST ------------------------------------------------------------------------------------

    def _api_headers(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}

    async def get_json(self, token: str, path: str, *, person: str | None = None) -> Any:
        """A conditional GET: with the ETag cached for this token, an unchanged resource costs a 304.

        `person` (the GitHub user id) is whose rate limit the call spends; without it, the token's.
        """
        return (await self._read(token, path, person)).body

    async def get_model(self, token: str, path: str, model: type[M], *, person: str | None = None) -> M:
        """`get_json` parsed into `model`; an answer GitHub confirms unchanged (304) is not parsed again.

        The model is shared by every read of this token that GitHub answers 304, so it must not be
        changed (copy it first). A body that does not fit `model` is GitHub failing, not the person.
        """
        entry = await self._read(token, path, person)
        parsed = entry.parsed.get(model)
        if parsed is None:
            try:
                parsed = entry.parsed[model] = model.model_validate(entry.body)
            except ValidationError:
                raise GitHubUnavailable(f"GitHub answered {path} with a body this server cannot read") from None
        return cast(M, parsed)

    async def _read(self, token: str, path: str, person: str | None) -> CachedResponse:
        """The body of a conditional GET, as a cache entry (a new one, uncached, if GitHub sent no ETag)."""
        url = f"{self._api_url}/{path.lstrip('/')}"
        limiter = f"person:{person}" if person is not None else f"token:{token_hash(token)}"
        cached = self._etags.get(token, url)
        held = self._backoff.holding(limiter)
        if held is not None:
            return self._instead_of_github(cached, held)
        headers = {**self._read_headers, "Authorization": f"Bearer {token}"}
        if cached is not None:
            headers["If-None-Match"] = cached.etag
        response = await self._send("GET", url, label=_label(path), headers=headers)
        self._note_exhaustion(limiter, response)
        if response.status_code == 304 and cached is not None:
            # GitHub confirmed the body, so the models parsed from it stand too.
            confirmed = CachedResponse(etag=cached.etag, body=cached.body, validated_at=self._clock.now(), parsed=cached.parsed)
            self._etags.put(token, url, confirmed)
            return confirmed
        try:
            self._raise_for_api_status(response)
        except GitHubRateLimited as limited:
            self._backoff.hold(limiter, limited)
            return self._instead_of_github(cached, limited)
        try:
            body = response.json()
        except (json.JSONDecodeError, ValueError):
            raise GitHubUnavailable(f"GitHub answered {path} with a body that is not JSON") from None
        entry = CachedResponse(etag=response.headers.get("etag") or "", body=body, validated_at=self._clock.now())
        if entry.etag:
            self._etags.put(token, url, entry)
        return entry

    def _instead_of_github(self, cached: CachedResponse | None, limited: GitHubRateLimited) -> CachedResponse:
        """While rate limited: a recent enough cached answer, else the limit with its retry time."""
        if cached is not None and self._clock.now() - cached.validated_at <= ETAG_FRESH_FOR:
            return cached
        raise limited

    def _note_exhaustion(self, limiter: str, response: httpx.Response) -> None:
        """A success that spent the last call of the hour: hold back until the reset, as GitHub
        would refuse anything sooner."""
        headers = response.headers
        if response.status_code >= 400 or headers.get("x-ratelimit-remaining") != "0":
            return
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            self._backoff.hold(limiter, GitHubRateLimited(retry_at=int(reset), secondary=False, now=int(self._clock.now())))

    async def get_user(self, token: str) -> GitHubUser:
        body = await self.get_json(token, "/user")
        try:
            return GitHubUser.model_validate(body)
        except ValidationError:
            raise GitHubUnavailable("GitHub's /user answer has no numeric id and login") from None

    async def get_org_membership(self, token: str, org: str) -> OrgMembership | None:
        """The person's membership of `org`, or None if they are not a member."""
        try:
            body = await self.get_json(token, f"/user/memberships/orgs/{quote(org, safe='')}")
        except GitHubNotFound:
            return None
        return OrgMembership.model_validate(body)

    def forget_token(self, token: str) -> None:
        self._etags.forget_token(token)

    # Transport -------------------------------------------------------------------------------

    async def _send(self, method: str, url: str, *, label: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        headers.setdefault("User-Agent", USER_AGENT)
        try:
            response = await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException:
            self._observe(label, None, None)
            raise GitHubUnavailable("GitHub did not answer in time") from None
        except httpx.HTTPError as exc:
            self._observe(label, None, None)
            raise GitHubUnavailable(f"GitHub could not be reached ({type(exc).__name__})") from None
        remaining = response.headers.get("x-ratelimit-remaining")
        self._observe(label, response.status_code, remaining)
        logger.debug("GitHub %s %s -> %s (rate limit remaining %s)", method, label, response.status_code, remaining)
        return response

    def _observe(self, label: str, status: int | None, remaining: str | None) -> None:
        if self._observer is not None:
            self._observer(label, status, remaining)

    def _raise_for_api_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        if status == 401:
            raise GitHubUnauthorized("GitHub no longer accepts this person's token (revoked, expired or replaced)")
        if status in (403, 429):
            self._raise_for_forbidden(response)
        if status == 404:
            raise GitHubNotFound("GitHub answered 404: not found, or not visible to this person's token")
        if status >= 500:
            raise GitHubUnavailable(f"GitHub answered HTTP {status}")
        raise GitHubError(f"GitHub answered HTTP {status}: {_message(response)}")

    def _raise_for_forbidden(self, response: httpx.Response) -> None:
        now = int(self._clock.now())
        headers = response.headers
        message = _message(response)
        retry_after = headers.get("retry-after")
        if retry_after is not None and retry_after.isdigit():
            raise GitHubRateLimited(retry_at=now + int(retry_after), secondary="secondary" in message.lower(), now=now)
        if headers.get("x-ratelimit-remaining") == "0":
            reset = headers.get("x-ratelimit-reset", "")
            retry_at = int(reset) if reset.isdigit() else now + _SECONDARY_LIMIT_PAUSE
            raise GitHubRateLimited(retry_at=retry_at, secondary=False, now=now)
        if response.status_code == 429 or "secondary rate limit" in message.lower():
            raise GitHubRateLimited(retry_at=now + _SECONDARY_LIMIT_PAUSE, secondary=True, now=now)
        sso = headers.get("x-github-sso")
        if sso:
            url = sso.split("url=", 1)[1].strip() if "url=" in sso else None
            raise GitHubForbidden(
                "saml_sso",
                "The organization uses SAML single sign-on and this token is not authorized for it"
                + (f": authorize it at {url}" if url else ""),
                detail={"sso_url": url} if url else None,
            )
        lowered = message.lower()
        if "ip allow list" in lowered:
            raise GitHubForbidden(
                "ip_allow_list",
                "The organization's IP allow list does not include this server's address; ask an org owner to add it",
            )
        if "oauth app access restrictions" in lowered or "access restrictions" in lowered:
            raise GitHubForbidden(
                "app_restricted",
                "The organization restricts OAuth App access and has not approved this app; "
                "an org owner can approve it in the organization's settings",
            )
        scopes = ScopesHeader.from_headers(headers)
        missing = [scope for scope in scopes.accepted if scope not in scopes.granted]
        if scopes.accepted and missing and not set(scopes.accepted) & set(scopes.granted):
            raise GitHubForbidden(
                "missing_scope",
                f"The token lacks the GitHub scope this needs ({', '.join(scopes.accepted)})",
                detail={"accepted": list(scopes.accepted), "granted": list(scopes.granted)},
            )
        raise GitHubForbidden("forbidden", f"GitHub refused: {message}")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:500]
    return str(body)[:200]


@functools.lru_cache(maxsize=256)  # a handful of paths, asked on every call
def _label(path: str) -> str:
    """A low-cardinality name for metrics: /user/memberships/orgs/acme -> user.memberships.orgs.

    The query string is not part of it (`/user/emails?per_page=100` -> user.emails): a tool's
    parameter must not create a time series per value.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    parts = [part for part in path.strip("/").split("/") if part]
    if parts[:3] == ["user", "memberships", "orgs"]:
        parts = parts[:3]
    return ".".join(parts) or "root"
