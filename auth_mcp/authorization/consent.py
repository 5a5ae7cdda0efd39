"""The consent page: the person approves this client before we send them to GitHub.

MCP security best practices (confused deputy): a server that logs people in at GitHub with one
static client id MUST ask for consent per client before redirecting upstream, on a page that
names the client and its redirect host, is CSRF-protected and cannot be framed. Approval creates
our single-use state toward GitHub and binds it to this browser (browser.py). We ask every time:
no approval is remembered, so a client can never skip this page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth_mcp import tokens
from auth_mcp.authorization.authorization_response import authorization_response_url
from auth_mcp.authorization.browser import BrowserBinding
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.client_names import look_alike_warnings
from auth_mcp.authorization.redirect_confirmation import confirmation_page, destination_host, leaves_the_device
from auth_mcp.clock import Clock
from auth_mcp.crypto import Keyring
from auth_mcp.github.client import GitHub
from auth_mcp.http.pages import Pages
from auth_mcp.storage.records import PendingAuthorization
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)

SCOPE_DESCRIPTIONS = {
    "read:user": "read your GitHub profile (name, login, avatar, bio)",
    "user:email": "read your e-mail addresses, including private ones",
    "read:org": "see which organizations you belong to",
}


# The consent form is three short fields (a request id, a CSRF token, the decision). app.py caps
# the body at a few kilobytes before it is read; these bound what the form parser accepts.
FORM_LIMITS = {"max_files": 0, "max_fields": 3, "max_part_size": 1024}
_FORM_TYPE = "application/x-www-form-urlencoded"


class ConsentForm(BaseModel):
    request: str
    csrf: str
    decision: str


class Consent:
    def __init__(
        self,
        *,
        store: Store,
        clients: ClientDirectory,
        github: GitHub,
        keyring: Keyring,
        browser: BrowserBinding,
        pages: Pages,
        clock: Clock,
        issuer: str,
        callback_url: str,
        github_scopes: Callable[[Sequence[str]], Sequence[str]],
    ) -> None:
        self._store = store
        self._clients = clients
        self._github = github
        self._keyring = keyring
        self._browser = browser
        self._pages = pages
        self._clock = clock
        self._issuer = issuer
        self._callback_url = callback_url
        self._github_scopes = github_scopes

    async def _pending(self, request_id: str) -> PendingAuthorization | Response:
        pending = await self._store.get_pending(tokens.token_hash(request_id)) if request_id else None
        if pending is None:
            return self._pages.error(
                status_code=400,
                title="Unknown authorization request",
                message="This sign-in request does not exist or has already been answered.",
                hint="Start signing in again from your application.",
                error="invalid_request",
            )
        if pending.expires_at <= self._clock.now():
            return self._pages.error(
                status_code=400,
                title="Authorization request expired",
                message="This sign-in request is more than 10 minutes old.",
                hint="Start signing in again from your application.",
                error="invalid_request",
            )
        if pending.consumed_at is not None:
            return self._pages.error(
                status_code=400,
                title="Sign-in finished",
                message="This sign-in request is already complete: you approved it and signed in with GitHub.",
                hint="You can close this tab. To sign in again, start from your application.",
                error="invalid_request",
            )
        if pending.upstream_state_hash is not None:
            return self._pages.error(
                status_code=400,
                title="Already approved",
                message="This sign-in request was already approved; finish it on GitHub in the tab it opened.",
                hint="If that tab is gone, start signing in again from your application.",
                error="invalid_request",
            )
        return pending

    async def show(self, request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        pending = await self._pending(request_id)
        if isinstance(pending, Response):
            return pending
        client = await self._clients.get(pending.client_id)
        if client is None:
            return self._pages.error(
                status_code=400,
                title="Unknown application",
                message="The application that started this sign-in is no longer registered.",
                error="invalid_client",
            )
        nonce, fresh = self._browser.ensure_nonce(request)
        redirect = urlsplit(pending.redirect_uri)
        client_verified_host = urlsplit(client.client_id).hostname if client.client_id.startswith("https://") else None
        client_name = client.client_name or client.client_id
        redirect_host = destination_host(pending.redirect_uri) if leaves_the_device(pending.redirect_uri) else redirect.hostname
        response = self._pages.render(
            "consent.html",
            action="/consent",
            request_id=request_id,
            csrf=self._browser.csrf_token(nonce, request_id),
            client_name=client_name,
            name_warnings=look_alike_warnings(client_name, redirect_host=redirect_host, verified_host=client_verified_host),
            client_id=client.client_id,
            client_verified_host=client_verified_host,
            redirect_host=redirect_host or f"{redirect.scheme}: (an application on your device)",
            redirect_uri=pending.redirect_uri,
            scopes=[{"name": s, "description": SCOPE_DESCRIPTIONS.get(s, s)} for s in pending.scopes],
        )
        if fresh:
            self._browser.set_nonce(response, nonce)
        return response

    async def decide(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != self._issuer:
            # A cross-site form post: CSRF against the consent page.
            return self._pages.error(
                status_code=403,
                title="Request refused",
                message="The approval did not come from this server's own page.",
                error="access_denied",
            )
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM_TYPE:
            return self._pages.error(
                status_code=400, title="Incomplete form", message="The consent form was not submitted whole.", error="invalid_request"
            )
        try:
            form = ConsentForm.model_validate(dict(await request.form(**FORM_LIMITS)))
        except (ValidationError, HTTPException):
            return self._pages.error(
                status_code=400, title="Incomplete form", message="The consent form was not submitted whole.", error="invalid_request"
            )
        if not self._browser.check_csrf(request, token=form.csrf, request_id=form.request):
            return self._pages.error(
                status_code=403,
                title="Request refused",
                message="This approval was not made on a consent page shown in this browser.",
                hint="Open the sign-in link from your application again, in this browser.",
                error="access_denied",
            )
        pending = await self._pending(form.request)
        if isinstance(pending, Response):
            return pending
        request_hash = tokens.token_hash(form.request)
        if form.decision == "deny":
            return await self._deny(pending, request_hash)
        if form.decision != "approve":
            return self._pages.error(status_code=400, title="Unknown decision", message="Approve or deny.", error="invalid_request")
        # The upstream state exists only from here on (MCP security best practices, OAuth state).
        state = tokens.new_opaque_id()
        verifier, challenge = tokens.new_pkce_pair()
        approved = await self._store.approve_pending(
            request_hash,
            upstream_state_hash=tokens.token_hash(state),
            github_verifier_enc=self._keyring.encrypt(verifier),
            expires_at=int(self._clock.now()) + tokens.UPSTREAM_STATE_TTL,
        )
        if not approved:
            return self._pages.error(
                status_code=400,
                title="Already approved",
                message="This sign-in request was already approved or has expired.",
                hint="Start signing in again from your application.",
                error="invalid_request",
            )
        response = RedirectResponse(
            self._github.authorize_url(
                redirect_uri=self._callback_url,
                scopes=self._github_scopes(pending.scopes),
                state=state,
                code_challenge=challenge,
            ),
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )
        self._browser.add_approved(request, response, tokens.token_hash(state))
        logger.info("consent given for client %s; sending the person to GitHub", pending.client_id)
        return response

    async def _deny(self, pending: PendingAuthorization, request_hash: str) -> Response:
        """The person said no: the client learns it (access_denied), through a page if that
        answer would take the person to a website."""
        await self._store.delete_pending(request_hash)
        logger.info("consent denied for client %s", pending.client_id)
        location = authorization_response_url(
            pending.redirect_uri,
            issuer=self._issuer,
            state=pending.client_state,
            error="access_denied",
            error_description="The person denied access",
        )
        if leaves_the_device(location):
            # A denial must not hand the person straight to a website they just refused
            # (RFC 9700 §4.11.2): they see where it leads and choose.
            return confirmation_page(
                self._pages, location, title="Access denied", default_message="You denied the application access."
            )
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
