"""The account page: a person signs in with GitHub, sees the applications they authorized, and
revokes any of them.

Sign-in is GitHub's own login, as for clients, but only to learn who this is:
- our state and PKCE pair toward GitHub live in a signed, HttpOnly cookie of this browser
  (`BrowserBinding`), so a callback whose state this browser did not start is refused (login
  CSRF, the same binding as the consent page's);
- GitHub comes back to `{issuer}/github/callback/account`, a subdirectory of the OAuth App's
  callback URL, which GitHub accepts as a redirect_uri;
- we ask for no scope at all (the public profile is enough to know who signed in). GitHub keeps
  at most 10 tokens per person, app and scope set, so a scope-less token never evicts a token a
  grant relies on; and we revoke it at once, since we never use it again;
- the session is a signed cookie holding the person's numeric GitHub id and login, for an hour.

The page lists only grants whose person is the signed-in numeric id. Revoking is a POST with
the CSRF token of the consent page's double-submit scheme (bound to this browser's nonce and the
person), from this server's own origin, for a grant of the signed-in person; anything else gets
a page saying why and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from itsdangerous import BadSignature
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth_mcp import tokens
from auth_mcp.authorization.browser import BrowserBinding
from auth_mcp.authorization.consent import SCOPE_DESCRIPTIONS
from auth_mcp.authorization.revocation import Revoker
from auth_mcp.clock import Clock
from auth_mcp.crypto import DecryptionError, Keyring
from auth_mcp.github.client import GitHub
from auth_mcp.github.models import GitHubError
from auth_mcp.http.pages import Pages
from auth_mcp.storage.records import Grant

logger = logging.getLogger(__name__)

ACCOUNT_PATH = "/account"
SIGN_IN_PATH = "/account/sign-in"
SIGN_OUT_PATH = "/account/sign-out"
REVOKE_PATH = "/account/revoke"
CALLBACK_SUFFIX = "/account"  # appended to the GitHub callback path
SESSION_MAX_AGE = 3600
SIGN_IN_MAX_AGE = tokens.UPSTREAM_STATE_TTL


class GrantDirectory(Protocol):
    """What the page reads: a person's grants and when each last got a token."""

    async def list_grants(self, *, github_user_id: int | None = None) -> list[Grant]: ...

    async def get_grant(self, grant_id: str) -> Grant | None: ...

    async def last_token_issued(self, grant_ids: Sequence[str]) -> dict[str, int]: ...


@dataclass(frozen=True)
class Person:
    github_user_id: int
    github_login: str


class RevokeForm(BaseModel):
    grant: str
    csrf: str


class SignOutForm(BaseModel):
    csrf: str


class AccountPages:
    def __init__(
        self,
        *,
        grants: GrantDirectory,
        revoker: Revoker,
        github: GitHub,
        keyring: Keyring,
        browser: BrowserBinding,
        pages: Pages,
        clock: Clock,
        issuer: str,
        callback_url: str,
    ) -> None:
        self._grants = grants
        self._revoker = revoker
        self._github = github
        self._keyring = keyring
        self._browser = browser
        self._pages = pages
        self._clock = clock
        self._issuer = issuer
        self._callback_url = callback_url + CALLBACK_SUFFIX
        prefix = "__Host-" if issuer.startswith("https://") else ""
        self._session_cookie = f"{prefix}auth_mcp_account"
        self._sign_in_cookie = f"{prefix}auth_mcp_account_sign_in"
        self._sessions = keyring.serializer("account-session")
        self._sign_ins = keyring.serializer("account-sign-in")
        self._secure = issuer.startswith("https://")

    # The page ----------------------------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        person = self._person(request)
        nonce, fresh = self._browser.ensure_nonce(request)
        if person is None:
            response = self._pages.render("account.html", person=None, sign_in=SIGN_IN_PATH)
        else:
            grants = await self._grants.list_grants(github_user_id=person.github_user_id)
            grants.sort(key=lambda grant: grant.created_at, reverse=True)
            last = await self._grants.last_token_issued([grant.grant_id for grant in grants])
            response = self._pages.render(
                "account.html",
                person=person,
                grants=[self._row(grant, last.get(grant.grant_id)) for grant in grants],
                csrf=self._csrf(nonce, person),
                revoke=REVOKE_PATH,
                sign_out=SIGN_OUT_PATH,
                revoked=request.query_params.get("revoked"),
            )
        if fresh:
            self._browser.set_nonce(response, nonce)
        return response

    def _row(self, grant: Grant, last_issued: int | None) -> dict[str, Any]:
        return {
            "id": grant.grant_id,
            "client": grant.client_name or grant.client_id,
            "client_id": grant.client_id,
            "scopes": [{"name": s, "description": SCOPE_DESCRIPTIONS.get(s, s)} for s in grant.scopes],
            "created": _when(grant.created_at),
            "last_used": _when(last_issued) if last_issued else "never",
        }

    # Sign-in through GitHub --------------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        state = tokens.new_opaque_id()
        verifier, challenge = tokens.new_pkce_pair()
        response = RedirectResponse(
            self._github.authorize_url(redirect_uri=self._callback_url, scopes=[], state=state, code_challenge=challenge),
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )
        value = self._sign_ins.dumps({"state": tokens.token_hash(state), "verifier": self._keyring.encrypt(verifier)})
        self._set(response, self._sign_in_cookie, value, SIGN_IN_MAX_AGE)
        return response

    async def callback(self, request: Request) -> Response:
        started = self._started_sign_in(request)
        state = request.query_params.get("state", "")
        if started is None or not state or not hmac.compare_digest(started[0], tokens.token_hash(state)):
            return self._pages.error(
                status_code=403,
                title="Sign-in started elsewhere",
                message="This sign-in was not started in this browser, so it cannot be finished here.",
                hint="Open the account page and sign in again.",
                error="access_denied",
            )
        code = request.query_params.get("code")
        if not code:
            return self._pages.error(
                status_code=400,
                title="Not signed in",
                message="GitHub did not sign you in" + (f" ({request.query_params['error']})." if "error" in request.query_params else "."),
                hint="Open the account page and sign in again.",
                error="access_denied",
            )
        try:
            github_tokens = await self._github.exchange_code(code=code, redirect_uri=self._callback_url, code_verifier=started[1])
            token = github_tokens.access_token.get_secret_value()
            user = await self._github.get_user(token)
        except GitHubError as exc:
            logger.warning("account sign-in failed at GitHub: %s", exc)
            return self._pages.error(
                status_code=502,
                title="GitHub did not answer",
                message=f"Signing in with GitHub failed: {exc}",
                hint="Try again in a minute.",
                error="temporarily_unavailable",
            )
        try:
            await self._github.revoke_token(token)  # identity was all we needed
        except GitHubError as exc:
            logger.info("could not revoke the account page's GitHub token: %s", exc)
        response = RedirectResponse(ACCOUNT_PATH, status_code=303, headers={"Cache-Control": "no-store"})
        self._set(response, self._session_cookie, self._sessions.dumps({"id": user.id, "login": user.login}), SESSION_MAX_AGE)
        self._delete(response, self._sign_in_cookie)
        logger.info("GitHub user %s (%s) signed in to the account page", user.id, user.login)
        return response

    async def sign_out(self, request: Request) -> Response:
        checked = await self._checked(request, SignOutForm)
        if isinstance(checked, Response):
            return checked
        response = RedirectResponse(ACCOUNT_PATH, status_code=303, headers={"Cache-Control": "no-store"})
        self._delete(response, self._session_cookie)
        return response

    # Revoking ------------------------------------------------------------------------------------

    async def revoke(self, request: Request) -> Response:
        checked = await self._checked(request, RevokeForm)
        if isinstance(checked, Response):
            return checked
        person, form = checked
        assert isinstance(form, RevokeForm)
        grant = await self._grants.get_grant(form.grant)
        if grant is None or grant.github_user_id != person.github_user_id:
            # Another person's grant is answered exactly like a missing one.
            return self._pages.error(
                status_code=404,
                title="No such authorization",
                message="You have no authorization with this id; it may have been revoked already.",
                hint="Go back to your account page and reload it.",
                error="invalid_request",
            )
        await self._revoker.revoke_grant(grant.grant_id, reason="revoked by the person on the account page", at_github=True)
        return RedirectResponse(f"{ACCOUNT_PATH}?revoked=1", status_code=303, headers={"Cache-Control": "no-store"})

    async def _checked(self, request: Request, form_type: type[SignOutForm | RevokeForm]) -> tuple[Person, BaseModel] | Response:
        """The signed-in person and their same-origin, CSRF-checked form; or a refusal page."""
        origin = request.headers.get("origin")
        if origin is not None and origin != self._issuer:
            return self._refused("The request did not come from this server's own page.")
        person = self._person(request)
        if person is None:
            return self._pages.error(
                status_code=401,
                title="Not signed in",
                message="Your session on this page ended.",
                hint="Open the account page and sign in again.",
                error="access_denied",
            )
        try:
            form = form_type.model_validate(dict(await request.form()))
        except ValidationError:
            return self._pages.error(
                status_code=400, title="Incomplete form", message="The form was not submitted whole.", error="invalid_request"
            )
        nonce = self._browser.nonce(request)
        if nonce is None or not self._keyring.verify_mac(form.csrf, "account-csrf", nonce, str(person.github_user_id)):
            return self._refused("This form was not sent from your account page in this browser.")
        return person, form

    def _refused(self, message: str) -> Response:
        return self._pages.error(
            status_code=403,
            title="Request refused",
            message=message,
            hint="Open the account page again and use its buttons.",
            error="access_denied",
        )

    # Cookies -------------------------------------------------------------------------------------

    def _csrf(self, nonce: str, person: Person) -> str:
        return self._keyring.mac("account-csrf", nonce, str(person.github_user_id))

    def _person(self, request: Request) -> Person | None:
        raw = request.cookies.get(self._session_cookie)
        if not raw:
            return None
        try:
            value = self._sessions.loads(raw, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("id"), int) or not isinstance(value.get("login"), str):
            return None
        return Person(github_user_id=value["id"], github_login=value["login"])

    def _started_sign_in(self, request: Request) -> tuple[str, str] | None:
        raw = request.cookies.get(self._sign_in_cookie)
        if not raw:
            return None
        try:
            value = self._sign_ins.loads(raw, max_age=SIGN_IN_MAX_AGE)
            return str(value["state"]), self._keyring.decrypt(str(value["verifier"]))
        except (BadSignature, DecryptionError, KeyError, TypeError):
            return None

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self._secure, httponly=True, samesite="lax")

    def _delete(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self._secure, httponly=True, samesite="lax")


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
