"""The GitHub stand-in: enough of github.com to log in and call the API without GitHub.

It serves dev mode (mounted in-process under /_dev/github when no GitHub credentials are set)
and end-to-end tests (as their fake GitHub). It models what auth-mcp relies on: the OAuth web
flow with PKCE, errors as HTTP 200 bodies, expiring tokens with single-use refresh tokens,
GitHub's 10-tokens-per-user/app/scope eviction, ETags and 304s that do not count against the
rate limit, rate-limit answers, e-mail addresses, organisations and memberships (SAML-protected
ones included), and token revocation. Web endpoints live at the root, the REST API both at the
root (github.com layout, web and API on separate bases) and under /api/v3 (GHES layout).

Tokens are signed, not stored, so they survive a restart of the process as long as the key does;
what must be remembered (used codes and refresh tokens, revocations, evictions, rate counters)
is kept in memory, which is right for a stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from auth_mcp.clock import Clock, SystemClock
from auth_mcp.urls import with_query


class Pages(Protocol):
    """How the stand-in draws its login page and errors (the server's own page renderer)."""

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> Response: ...

    def error(self, *, status_code: int, title: str, message: str, error: str | None = None) -> Response: ...


# GitHub keeps at most this many tokens per user, app and scope set; the next evicts the oldest.
TOKENS_PER_USER_APP_SCOPE = 10
PICKS = ("octocat", "alice", "bob")


def user_id_for(login: str) -> int:
    """A stable numeric id per login, as GitHub's ids are stable per account."""
    return 1_000_000 + int(hashlib.sha256(login.lower().encode()).hexdigest()[:8], 16) % 90_000_000


@dataclass
class DevGitHubOptions:
    """How the stand-in behaves. Tests change these on a live instance."""

    client_id: str
    client_secret: str
    # The OAuth App's callback URL: redirect_uri must be it or a subdirectory of it, as at GitHub.
    callback_url: str
    # None: classic OAuth App tokens that never expire. Seconds: expiring tokens with refresh.
    token_ttl: int | None = None
    refresh_token_ttl: int = 182 * 24 * 3600
    rate_limit: int = 5000
    # login -> organisations the person belongs to; orgs listed in `sso_orgs` answer 403 with
    # X-GitHub-SSO for tokens not authorized for them.
    orgs: dict[str, list[str]] = field(default_factory=dict)
    sso_orgs: set[str] = field(default_factory=set)
    # login -> teams ("org/team-slug") the person belongs to, listed by /user/teams.
    teams: dict[str, list[str]] = field(default_factory=dict)
    # Queued failures per endpoint ("access_token", "user", ...): an HTTP status to answer once,
    # or "error:<code>" for an OAuth error in an HTTP 200 body.
    faults: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class _Usage:
    window_start: int
    used: int


class DevGitHub:
    """The stand-in's state and its Starlette app (`.app`)."""

    def __init__(self, *, options: DevGitHubOptions, signing_key: str, pages: Pages, clock: Clock | None = None) -> None:
        self.options = options
        self._clock = clock or SystemClock()
        self._pages = pages
        self._serializer = URLSafeSerializer(signing_key, salt="auth-mcp/dev-github")
        # Remembered only as long as they matter (codes and tokens expire), and never more than
        # _MEMORY entries, so a long-running dev server does not grow without end.
        self._used_codes = _Forgetful(self._clock)
        self._used_refresh = _Forgetful(self._clock)
        self._revoked = _Forgetful(self._clock)
        self._revoked_before: dict[str, float] = {}
        self._issued: dict[tuple[str, str], OrderedDict[str, None]] = defaultdict(OrderedDict)
        self._usage: dict[str, _Usage] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API call, for tests
        api_routes = [
            Route("/user", self._user),
            Route("/user/emails", self._emails),
            Route("/user/orgs", self._orgs),
            Route("/user/memberships/orgs/{org}", self._membership),
            Route("/user/teams", self._teams),
            Route("/applications/{client_id}/token", self._revoke_token, methods=["DELETE"]),
            Route("/applications/{client_id}/grant", self._revoke_grant, methods=["DELETE"]),
        ]
        self.app = Starlette(
            routes=[
                Route("/login/oauth/authorize", self._authorize, methods=["GET", "POST"]),
                Route("/login/oauth/access_token", self._access_token, methods=["POST"]),
                Mount("/api/v3", routes=api_routes),
                *api_routes,
            ]
        )

    # Test helpers ----------------------------------------------------------------------------

    def fail_next(self, endpoint: str, fault: str) -> None:
        self.options.faults[endpoint].append(fault)

    def revoke_all(self, login: str) -> None:
        """What the person does on github.com when they revoke the app."""
        self._revoked_before[login.lower()] = self._clock.now()

    def rate_limit_used(self, login: str) -> int:
        """Requests counted against the person's hourly limit (304s are not counted)."""
        usage = self._usage.get(login.lower())
        return usage.used if usage is not None else 0

    # OAuth web flow --------------------------------------------------------------------------

    def _fault(self, endpoint: str) -> str | None:
        queue = self.options.faults.get(endpoint)
        return queue.pop(0) if queue else None

    async def _authorize(self, request: Request) -> Response:
        source = request.query_params if request.method == "GET" else await request.form()
        params = {key: value for key, value in source.items() if isinstance(value, str)}
        if params.get("client_id") != self.options.client_id:
            return self._pages.error(
                status_code=404, title="Unknown OAuth application", message="The client_id is not this app's."
            )
        redirect_uri = params.get("redirect_uri") or self.options.callback_url
        if redirect_uri != self.options.callback_url and not redirect_uri.startswith(self.options.callback_url + "/"):
            # GitHub shows its own page for a redirect_uri outside the app's callback URL; like
            # GitHub, a subdirectory of it is accepted (the account page's sign-in uses one).
            return self._pages.error(
                status_code=400,
                title="Redirect URI mismatch",
                message="The redirect_uri is not the OAuth App's callback URL.",
                error="redirect_uri_mismatch",
            )
        state = params.get("state") or None  # GitHub returns no state when none was sent
        if request.method == "GET":
            hidden = [
                (name, params.get(name, ""))
                for name in ("client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method")
            ]
            return self._pages.render(
                "github_login.html",
                action=str(request.url.path),
                hidden=hidden,
                scope=params.get("scope", ""),
                default_login="octocat",
                picks=PICKS,
            )
        if params.get("decision") == "cancel":
            return _redirect(
                redirect_uri,
                error="access_denied",
                error_description="The user has denied your application access.",
                state=state,
            )
        login = (params.get("pick") or params.get("login") or "").strip()
        if not _valid_login(login):
            return self._pages.error(status_code=400, title="Invalid user name", message="Use letters, digits and '-'.")
        if params.get("code_challenge_method", "S256") != "S256" and params.get("code_challenge"):
            return self._pages.error(status_code=400, title="Unsupported PKCE method", message="Use S256.")
        code = "devcode_" + self._serializer.dumps(
            {
                "login": login,
                "scopes": _scopes(params.get("scope", "")),
                "redirect_uri": redirect_uri,
                "challenge": params.get("code_challenge") or None,
                "exp": int(self._clock.now()) + 600,
                "n": secrets.token_hex(8),
            }
        )
        return _redirect(redirect_uri, code=code, state=state)

    async def _access_token(self, request: Request) -> Response:
        self._record(request)
        fault = self._fault("access_token")
        if fault and fault.isdigit():
            return Response("GitHub is having a moment", status_code=int(fault))
        if fault and fault.startswith("error:"):
            return _oauth_error(fault.removeprefix("error:"))
        form = dict(await request.form())
        if form.get("client_id") != self.options.client_id or not hmac.compare_digest(
            str(form.get("client_secret", "")).encode(), self.options.client_secret.encode()
        ):
            return _oauth_error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        if form.get("grant_type") == "refresh_token":
            return self._refresh(str(form.get("refresh_token", "")))
        code = str(form.get("code", ""))
        payload = self._load(code, "devcode_")
        if payload is None or code in self._used_codes or payload["exp"] < self._clock.now():
            return _oauth_error("bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri") and form["redirect_uri"] != payload["redirect_uri"]:
            return _oauth_error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.")
        if payload["challenge"] is not None:
            verifier = str(form.get("code_verifier", ""))
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if not hmac.compare_digest(digest, payload["challenge"]):
                return _oauth_error("bad_verification_code", "The code_verifier does not match the code_challenge.")
        self._used_codes.add(code, until=payload["exp"])
        return JSONResponse(self._mint_tokens(payload["login"], tuple(payload["scopes"])))

    def _refresh(self, refresh_token: str) -> Response:
        payload = self._load(refresh_token, "ghr_")
        if (
            payload is None
            or refresh_token in self._used_refresh
            or payload["exp"] < self._clock.now()
            or self._is_revoked(payload)
        ):
            return _oauth_error("bad_refresh_token", "The refresh token passed is incorrect or expired.")
        # Single use, and the access token it was issued with dies at once (as on GitHub).
        self._used_refresh.add(refresh_token, until=payload["exp"])
        self._revoked.add(payload["access"], until=None)
        return JSONResponse(self._mint_tokens(payload["login"], tuple(payload["scopes"])))

    def _mint_tokens(self, login: str, scopes: tuple[str, ...]) -> dict[str, Any]:
        issued_at = self._clock.now()
        now = int(issued_at)
        ttl = self.options.token_ttl
        access = "gho_" + self._serializer.dumps(
            {"login": login, "scopes": list(scopes), "iat": issued_at, "exp": now + ttl if ttl else None, "n": secrets.token_hex(8)}
        )
        issued = self._issued[(login.lower(), " ".join(sorted(scopes)))]
        issued[access] = None
        while len(issued) > TOKENS_PER_USER_APP_SCOPE:
            evicted, _ = issued.popitem(last=False)
            self._revoked.add(evicted, until=None)
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "scope": ",".join(scopes)}
        if ttl:
            body["expires_in"] = ttl
            body["refresh_token"] = "ghr_" + self._serializer.dumps(
                {
                    "login": login,
                    "scopes": list(scopes),
                    "iat": issued_at,
                    "exp": now + self.options.refresh_token_ttl,
                    "access": access,
                    "n": secrets.token_hex(8),
                }
            )
            body["refresh_token_expires_in"] = self.options.refresh_token_ttl
        return body

    def _load(self, value: str, prefix: str) -> dict[str, Any] | None:
        if not value.startswith(prefix):
            return None
        try:
            payload = self._serializer.loads(value.removeprefix(prefix))
        except BadSignature:
            return None
        return payload if isinstance(payload, dict) else None

    def _is_revoked(self, payload: dict[str, Any]) -> bool:
        before = self._revoked_before.get(str(payload["login"]).lower())
        return before is not None and payload["iat"] <= before

    # REST API --------------------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        # Paths as GitHub would see them, whatever the stand-in is mounted under.
        self.calls.append((request.method, request.url.path.removeprefix(request.scope.get("root_path", ""))))

    def _authenticate(self, request: Request) -> dict[str, Any] | Response:
        self._record(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token:
            return _api_error(401, "Requires authentication")
        payload = self._load(token, "gho_")
        if (
            payload is None
            or token in self._revoked
            or self._is_revoked(payload)
            or (payload["exp"] is not None and payload["exp"] < self._clock.now())
        ):
            return _api_error(401, "Bad credentials")
        payload["token"] = token
        return payload

    def _respond(self, request: Request, who: dict[str, Any], endpoint: str, body: Any) -> Response:
        login = str(who["login"]).lower()
        fault = self._fault(endpoint)
        now = int(self._clock.now())
        usage = self._usage.get(login)
        if usage is None or usage.window_start + 3600 <= now:
            usage = self._usage[login] = _Usage(window_start=now, used=0)
        limits = {
            "x-ratelimit-limit": str(self.options.rate_limit),
            "x-ratelimit-reset": str(usage.window_start + 3600),
            "x-oauth-scopes": ", ".join(who["scopes"]),
        }
        if fault and fault.isdigit():
            return _api_error(int(fault), "Server Error", headers=limits)
        if usage.used >= self.options.rate_limit:
            limits.update({"x-ratelimit-remaining": "0", "x-ratelimit-used": str(usage.used)})
            return _api_error(403, "API rate limit exceeded for user.", headers=limits)
        encoded = json.dumps(body, sort_keys=True).encode()
        etag = f'W/"{hashlib.sha256(encoded + who["token"].encode()).hexdigest()[:32]}"'
        if request.headers.get("if-none-match") == etag:
            # GitHub: a 304 for a conditional request does not count against the rate limit.
            limits.update({"x-ratelimit-remaining": str(self.options.rate_limit - usage.used), "etag": etag})
            return Response(status_code=304, headers=limits)
        usage.used += 1
        limits.update(
            {
                "x-ratelimit-remaining": str(self.options.rate_limit - usage.used),
                "x-ratelimit-used": str(usage.used),
                "etag": etag,
                "cache-control": "private, max-age=60, s-maxage=60",
            }
        )
        return Response(encoded, headers=limits, media_type="application/json; charset=utf-8")

    def _profile(self, login: str) -> dict[str, Any]:
        user_id = user_id_for(login)
        return {
            "login": login,
            "id": user_id,
            "node_id": base64.b64encode(f"04:User{user_id}".encode()).decode(),
            "avatar_url": f"https://avatars.example.invalid/u/{user_id}",
            "html_url": f"https://github.example.invalid/{login}",
            "type": "User",
            "site_admin": False,
            "name": login.replace("-", " ").title(),
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "bio": "A person made up by auth-mcp's GitHub stand-in",
            "public_repos": len(login),
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        }

    async def _user(self, request: Request) -> Response:
        who = self._authenticate(request)
        if isinstance(who, Response):
            return who
        return self._respond(request, who, "user", self._profile(who["login"]))

    async def _emails(self, request: Request) -> Response:
        who = self._authenticate(request)
        if isinstance(who, Response):
            return who
        if "user:email" not in who["scopes"] and "user" not in who["scopes"]:
            return _api_error(
                404,
                "Not Found",
                headers={"x-accepted-oauth-scopes": "user, user:email", "x-oauth-scopes": ", ".join(who["scopes"])},
            )
        login = who["login"]
        emails = [
            {"email": f"{login.lower()}@example.com", "primary": True, "verified": True, "visibility": "private"},
            {
                "email": f"{user_id_for(login)}+{login.lower()}@users.noreply.github.example",
                "primary": False,
                "verified": True,
                "visibility": None,
            },
            {"email": f"{login.lower()}@old.example.org", "primary": False, "verified": False, "visibility": None},
        ]
        return self._respond(request, who, "user/emails", emails)

    def _org(self, name: str) -> dict[str, Any]:
        org_id = user_id_for("org:" + name)
        return {"login": name, "id": org_id, "url": f"https://api.github.example.invalid/orgs/{name}", "description": None}

    async def _orgs(self, request: Request) -> Response:
        who = self._authenticate(request)
        if isinstance(who, Response):
            return who
        if "read:org" not in who["scopes"]:
            # Without read:org GitHub lists only public memberships; the stand-in has none.
            return self._respond(request, who, "user/orgs", [])
        orgs = self.options.orgs.get(who["login"].lower(), [])
        return self._respond(request, who, "user/orgs", [self._org(org) for org in orgs])

    async def _teams(self, request: Request) -> Response:
        who = self._authenticate(request)
        if isinstance(who, Response):
            return who
        if "read:org" not in who["scopes"]:
            return _api_error(403, "Resource not accessible by integration", headers={"x-accepted-oauth-scopes": "read:org"})
        teams = self.options.teams.get(who["login"].lower(), [])
        page_text, per_page_text = request.query_params.get("page", "1"), request.query_params.get("per_page", "30")
        if not (page_text.isdigit() and per_page_text.isdigit()) or int(page_text) < 1:
            return _api_error(422, "page and per_page must be positive integers")
        page, per_page = int(page_text), min(int(per_page_text), 100) or 30
        body = [
            {"slug": slug, "name": slug, "organization": self._org(org)}
            for org, slug in (team.split("/", 1) for team in teams[(page - 1) * per_page : page * per_page])
        ]
        return self._respond(request, who, "user/teams", body)

    async def _membership(self, request: Request) -> Response:
        who = self._authenticate(request)
        if isinstance(who, Response):
            return who
        org = request.path_params["org"]
        if "read:org" not in who["scopes"]:
            return _api_error(
                403,
                "You need at least read:org scope or user scope to list your organization memberships.",
                headers={"x-accepted-oauth-scopes": "admin:org, read:org, repo, user, write:org"},
            )
        if org.lower() in {o.lower() for o in self.options.sso_orgs}:
            return _api_error(
                403,
                "Resource protected by organization SAML enforcement. You must grant your OAuth token access to "
                "this organization.",
                headers={"x-github-sso": f"required; url=https://github.example.invalid/orgs/{org}/sso?authorization_request=dev"},
            )
        orgs = {o.lower() for o in self.options.orgs.get(who["login"].lower(), [])}
        if org.lower() not in orgs:
            return _api_error(404, "Not Found")
        body = {"state": "active", "role": "member", "organization": self._org(org), "user": {"login": who["login"]}}
        return self._respond(request, who, "user/memberships/orgs", body)

    def _app_auth(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return client_id == self.options.client_id and hmac.compare_digest(
            secret.encode(), self.options.client_secret.encode()
        )

    async def _revoke_token(self, request: Request) -> Response:
        self._record(request)
        if request.path_params["client_id"] != self.options.client_id or not self._app_auth(request):
            return _api_error(404, "Not Found")
        try:
            token = str((await request.json())["access_token"])
        except (ValueError, KeyError, TypeError):
            return _api_error(422, "Invalid request: access_token is required")
        payload = self._load(token, "gho_")
        if payload is None or token in self._revoked:
            return _api_error(404, "Not Found")
        self._revoked.add(token, until=payload["exp"])
        return Response(status_code=204)

    async def _revoke_grant(self, request: Request) -> Response:
        self._record(request)
        if request.path_params["client_id"] != self.options.client_id or not self._app_auth(request):
            return _api_error(404, "Not Found")
        try:
            token = str((await request.json())["access_token"])
        except (ValueError, KeyError, TypeError):
            return _api_error(422, "Invalid request: access_token is required")
        payload = self._load(token, "gho_")
        if payload is None:
            return _api_error(404, "Not Found")
        self.revoke_all(payload["login"])
        return Response(status_code=204)


_MEMORY = 100_000


class _Forgetful:
    """A set whose members leave when they expire (checked as it grows), and at most _MEMORY."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until: OrderedDict[str, float | None] = OrderedDict()

    def add(self, value: str, *, until: float | None) -> None:
        self._until[value] = until
        if len(self._until) % 1000 == 0:
            now = self._clock.now()
            for key in [k for k, expiry in self._until.items() if expiry is not None and expiry < now]:
                del self._until[key]
        while len(self._until) > _MEMORY:
            self._until.popitem(last=False)

    def __contains__(self, value: object) -> bool:
        return value in self._until


def _valid_login(login: str) -> bool:
    return 0 < len(login) <= 39 and login[0].isalnum() and all(c.isalnum() or c == "-" for c in login)


def _scopes(value: str) -> list[str]:
    return [s for s in value.replace(",", " ").split() if s]


def _redirect(url: str, **params: str | None) -> RedirectResponse:
    return RedirectResponse(with_query(url, **params), status_code=302)


def _oauth_error(error: str, description: str | None = None) -> JSONResponse:
    # GitHub answers OAuth errors with HTTP 200.
    body = {"error": error, "error_description": description or error.replace("_", " "), "error_uri": "https://docs.github.com"}
    return JSONResponse(body, status_code=200)


def _api_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)},
        status_code=status,
        headers=headers,
    )

