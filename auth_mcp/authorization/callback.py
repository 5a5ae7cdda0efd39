"""`/github/callback`: GitHub sends the person back; we finish the login and answer the client.

The state must be ours, approved in this very browser, unused and fresh; anything else ends
on a page that says which it was (we cannot trust a redirect URI we could not tie to a
request). From a valid state on, every failure reaches the MCP client's redirect URI as an
OAuth error with the client's `state` and our `iss`, because the client is who can act.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth_mcp import tokens
from auth_mcp.authorization.access_policy import AccessPolicy
from auth_mcp.authorization.authorization_response import authorization_response_url
from auth_mcp.authorization.browser import BrowserBinding
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.clock import Clock
from auth_mcp.crypto import DecryptionError, Keyring
from auth_mcp.github.client import GitHub
from auth_mcp.github.models import (
    GitHubError,
    GitHubOAuthError,
    GitHubRateLimited,
    GitHubTokens,
    GitHubUnavailable,
    GitHubUser,
)
from auth_mcp.github.person import sealed_credentials
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.pages import Pages
from auth_mcp.http.refusals import log_refusal
from auth_mcp.storage.records import CodeRecord, Grant, PendingAuthorization
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)

# GitHub token-endpoint errors that mean this server is misconfigured, not that the person failed.
_MISCONFIGURATION = {
    "incorrect_client_credentials": "AUTH_MCP_GITHUB_CLIENT_ID / AUTH_MCP_GITHUB_CLIENT_SECRET are wrong",
    "redirect_uri_mismatch": "the GitHub OAuth App's callback URL must be {callback}",
    "unverified_user_email": "the person must verify their primary e-mail address at GitHub",
}


class _LoginFailed(Exception):
    def __init__(self, error: str, description: str) -> None:
        self.error = error
        self.description = description


class GitHubCallback:
    def __init__(
        self,
        *,
        store: Store,
        clients: ClientDirectory,
        github: GitHub,
        policy: AccessPolicy,
        keyring: Keyring,
        browser: BrowserBinding,
        pages: Pages,
        clock: Clock,
        issuer: str,
        callback_url: str,
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._clients = clients
        self._github = github
        self._policy = policy
        self._keyring = keyring
        self._browser = browser
        self._pages = pages
        self._clock = clock
        self._issuer = issuer
        self._callback_url = callback_url

    async def handle(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        if not state:
            return self._pages.error(
                status_code=400,
                title="Sign-in link incomplete",
                message="GitHub sent you back without the state of this sign-in.",
                hint="Start signing in again from your application.",
                error="invalid_request",
            )
        state_hash = tokens.token_hash(state)
        if not self._browser.has_approved(request, state_hash):
            self._metrics.logins.labels("other_browser").inc()
            # Approved in another browser (or never): finishing here would log this browser's
            # person into someone else's client session, or vice versa.
            return self._pages.error(
                status_code=403,
                title="Sign-in started elsewhere",
                message="This sign-in was not approved in this browser, so it cannot be finished here.",
                hint="If you started it, go back to your application and start again in this browser.",
                error="access_denied",
            )
        outcome, pending = await self._store.take_pending_by_state(state_hash)
        if outcome == "used" or pending is None:
            self._metrics.logins.labels("used_state" if outcome == "used" else "unknown_state").inc()
            message = (
                "This sign-in link was already used."
                if outcome == "used"
                else "This sign-in is unknown to this server (forged, or from before its data was reset)."
            )
            response: Response = self._pages.error(
                status_code=400,
                title="Sign-in link not valid",
                message=message,
                hint="Start signing in again from your application.",
                error="invalid_request",
            )
            self._browser.remove_approved(request, response, state_hash)
            return response
        if pending.expires_at <= self._clock.now():
            self._metrics.logins.labels("expired_state").inc()
            response = self._pages.error(
                status_code=400,
                title="Sign-in expired",
                message="More than 10 minutes passed between approving and coming back from GitHub.",
                hint="Start signing in again from your application.",
                error="invalid_request",
            )
            self._browser.remove_approved(request, response, state_hash)
            return response
        try:
            code = await self._complete(request, pending)
            location = authorization_response_url(
                pending.redirect_uri, issuer=self._issuer, state=pending.client_state, code=code
            )
            self._metrics.logins.labels("ok").inc()
        except _LoginFailed as failure:
            self._metrics.logins.labels(failure.error).inc()
            log_refusal(
                endpoint=request.url.path, status=302, error=failure.error, description=failure.description, client_id=pending.client_id
            )
            location = authorization_response_url(
                pending.redirect_uri,
                issuer=self._issuer,
                state=pending.client_state,
                error=failure.error,
                error_description=failure.description,
            )
        response = RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})
        self._browser.remove_approved(request, response, state_hash)
        return response

    async def _complete(self, request: Request, pending: PendingAuthorization) -> str:
        error = request.query_params.get("error")
        if error:
            if error == "access_denied":
                raise _LoginFailed("access_denied", "The person denied access at GitHub")
            raise _LoginFailed("server_error", f"GitHub reported {error}")
        code = request.query_params.get("code")
        if not code:
            raise _LoginFailed("server_error", "GitHub returned neither a code nor an error")
        client = await self._clients.get(pending.client_id)
        if client is None:
            raise _LoginFailed("unauthorized_client", "The client is no longer registered")
        try:
            verifier = self._keyring.decrypt(pending.github_verifier_enc or "")
        except DecryptionError:
            raise _LoginFailed("server_error", "The sign-in cannot be finished after a key change; start again") from None
        github_tokens = await self._exchange(code, verifier)
        token = github_tokens.access_token.get_secret_value()
        try:
            user = await self._identify(token)
            decision = await self._policy.decide(
                user=user, membership=lambda org: self._github.get_org_membership(token, org)
            )
        except _LoginFailed:
            await self._forget(token)
            raise
        except (GitHubUnavailable, GitHubRateLimited) as exc:
            await self._forget(token)
            raise _LoginFailed("temporarily_unavailable", f"GitHub is unavailable: {exc}") from None
        except (GitHubError, ValidationError) as exc:
            # Whatever else GitHub answered while checking who may get in: fail closed.
            await self._forget(token)
            raise _LoginFailed("access_denied", f"could not confirm with GitHub that you may get in: {exc}") from None
        if not decision.allowed:
            # Nothing is stored for someone who may not get in, and GitHub forgets the token.
            await self._forget(token)
            logger.info("login of GitHub user %s (%s) refused: %s", user.id, user.login, decision.reason)
            raise _LoginFailed("access_denied", decision.reason)
        return await self._record(pending, client.client_name, user, github_tokens)

    async def _exchange(self, code: str, verifier: str) -> GitHubTokens:
        try:
            return await self._github.exchange_code(code=code, redirect_uri=self._callback_url, code_verifier=verifier)
        except GitHubUnavailable as exc:
            logger.warning("GitHub token exchange failed: %s", exc)
            raise _LoginFailed("temporarily_unavailable", f"GitHub is unavailable: {exc}") from None
        except GitHubOAuthError as exc:
            hint = _MISCONFIGURATION.get(exc.error)
            if hint:
                logger.error("GitHub refused the code exchange (%s): %s", exc.error, hint.format(callback=self._callback_url))
            else:
                logger.warning("GitHub refused the code exchange: %s", exc.error)
            raise _LoginFailed("server_error", f"GitHub refused the login: {exc.error}") from None

    async def _identify(self, token: str) -> GitHubUser:
        try:
            return await self._github.get_user(token)
        except GitHubUnavailable:
            raise
        except GitHubError as exc:
            raise _LoginFailed("server_error", f"GitHub did not say who signed in: {exc}") from None

    async def _forget(self, token: str) -> None:
        try:
            await self._github.revoke_token(token)
        except GitHubError as exc:
            logger.warning("could not revoke an unused GitHub token: %s", exc)

    async def _record(
        self, pending: PendingAuthorization, client_name: str | None, user: GitHubUser, github_tokens: GitHubTokens
    ) -> str:
        now = int(self._clock.now())
        code = tokens.new_authorization_code()
        grant_id = tokens.new_opaque_id()
        grant = Grant(
            grant_id=grant_id,
            client_id=pending.client_id,
            client_name=client_name,
            github_user_id=user.id,
            github_login=user.login,
            scopes=pending.scopes,
            resource=pending.resource,
            github=sealed_credentials(github_tokens, keyring=self._keyring, now=now),
            created_at=now,
            expires_at=now + tokens.AUTHORIZATION_CODE_TTL,
        )
        await self._store.add_grant_with_code(
            grant,
            CodeRecord(
                code_hash=tokens.token_hash(code),
                grant_id=grant_id,
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                redirect_uri_provided_explicitly=pending.redirect_uri_provided_explicitly,
                code_challenge=pending.code_challenge,
                scopes=pending.scopes,
                resource=pending.resource,
                expires_at=now + tokens.AUTHORIZATION_CODE_TTL,
                used_at=None,
            ),
        )
        logger.info("GitHub user %s (%s) authorized client %s", user.id, user.login, pending.client_id)
        return code
