"""The authorization server's HTTP endpoints: the SDK's handlers, with what the SDK leaves out.

- /authorize: the SDK's handler, plus RFC 9207 `iss` on the error redirects it makes itself, a
  readable page (instead of bare JSON) when it must not redirect (unknown client, bad
  redirect_uri: never a redirect), and a page the person confirms before an error redirect to a
  website (RFC 9700 §4.11.2: no open redirector through self-registered clients).
- /token: the SDK's handler, after refusing unknown grant types (`unsupported_grant_type`, where
  the SDK would say `invalid_request`) and foreign resources (RFC 8707 `invalid_target`, which
  the SDK does not check).
- /revoke: RFC 7009 by hand, because the SDK's handler requires a `client_secret` form field
  even from public clients, which then cannot log out.
"""

from __future__ import annotations

import json
from typing import Literal

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.provider import CONSENT_PATH, AuthServerProvider
from auth_mcp.authorization.redirect_confirmation import confirmation_page, leaves_the_device
from auth_mcp.http.pages import Pages
from auth_mcp.resource.audience import Audience
from auth_mcp.urls import with_query

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


class AuthorizeEndpoint:
    def __init__(self, *, provider: AuthServerProvider, clients: ClientDirectory, issuer: str, pages: Pages) -> None:
        self._handler = AuthorizationHandler(provider)
        self._clients = clients
        self._issuer = issuer
        self._consent_url = issuer + CONSENT_PATH
        self._pages = pages

    async def __call__(self, request: Request) -> Response:
        params = request.query_params if request.method == "GET" else await request.form()
        client_id = params.get("client_id")
        if isinstance(client_id, str) and client_id.startswith("https://"):
            # A metadata-document client that cannot be resolved: say why (the SDK would only
            # say "not found"), on a page, since its redirect URIs are unknown.
            problem = await self._clients.problem(client_id)
            if problem is not None and problem.temporary:
                return self._pages.error(
                    status_code=503,
                    title="Too busy to sign in right now",
                    message=problem.message,
                    hint="No redirect was made. Try again in a minute.",
                    error="temporarily_unavailable",
                    headers={"Retry-After": "30"},
                )
            if problem is not None:
                return self._pages.error(
                    status_code=400,
                    title="This application cannot sign in here",
                    message=problem.message,
                    hint="No redirect was made. Tell the application's developers.",
                    error="invalid_client",
                )
        response = await self._handler.handle(request)
        location = response.headers.get("location")
        if response.status_code in (302, 303) and location and not location.startswith(self._consent_url + "?"):
            # An error redirect to the client's registered redirect_uri: add iss (RFC 9207 §2).
            location = with_query(location, iss=self._issuer)
            if leaves_the_device(location):
                # Before the person saw the consent page: only through a page they confirm.
                return confirmation_page(
                    self._pages,
                    location,
                    title="This sign-in request cannot be completed",
                    default_message="The application's request was not valid.",
                )
            response.headers["location"] = location
            return response
        if response.status_code == 400 and "text/html" in request.headers.get("accept", ""):
            try:
                body = json.loads(bytes(response.body))
            except ValueError:
                return response
            return self._pages.error(
                status_code=400,
                title="This sign-in request cannot be used",
                message=str(body.get("error_description") or "The request was malformed."),
                hint="The application that sent you here is misconfigured or not registered with this server; "
                "no redirect was made.",
                error=str(body.get("error") or "invalid_request"),
            )
        return response


class TokenEndpoint:
    def __init__(self, *, provider: AuthServerProvider, audience: Audience) -> None:
        self._handler = TokenHandler(provider, ClientAuthenticator(provider))
        self._audience = audience

    async def __call__(self, request: Request) -> Response:
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - python-multipart raises several types for a malformed body
            return _oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type not in _GRANT_TYPES:
            # RFC 6749 §5.2
            return _oauth_error(400, "unsupported_grant_type", f"grant_type must be one of {', '.join(sorted(_GRANT_TYPES))}")
        for resource in form.getlist("resource"):
            if not isinstance(resource, str) or not self._audience.accepts(resource):
                # RFC 8707 §2
                return _oauth_error(400, "invalid_target", "the resource parameter does not name this MCP server")
        return await self._handler.handle(request)


class RevocationForm(BaseModel):
    token: str
    token_type_hint: Literal["access_token", "refresh_token"] | str | None = None


class RevokeEndpoint:
    def __init__(self, *, provider: AuthServerProvider) -> None:
        self._provider = provider
        self._authenticator = ClientAuthenticator(provider)

    async def __call__(self, request: Request) -> Response:
        try:
            client = await self._authenticator.authenticate_request(request)
        except AuthenticationError as exc:
            return _oauth_error(401, "invalid_client", exc.message)
        try:
            form = RevocationForm.model_validate(dict(await request.form()))
        except ValidationError:
            return _oauth_error(400, "invalid_request", "token is required")
        # RFC 7009 §2.2: answer 200 whether or not the token was valid or the client's own.
        await self._provider.revoke_by_token(client, form.token)
        return Response(status_code=200, headers=_NO_STORE)
