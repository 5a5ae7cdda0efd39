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
/token and /revoke authenticate clients with client_authentication.py (the SDK's methods plus
private_key_jwt). Every refusal is logged once, with the error the client received (refusals.py).
"""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_mcp.authorization.client_authentication import with_client_id
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.provider import CONSENT_PATH, AuthServerProvider
from auth_mcp.authorization.redirect_confirmation import confirmation_page, leaves_the_device
from auth_mcp.http.pages import Pages
from auth_mcp.http.refusals import log_refusal
from auth_mcp.resource.audience import Resources
from auth_mcp.urls import with_query

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


def _client_id(params: QueryParams | FormData) -> str | None:
    value = params.get("client_id")
    return value if isinstance(value, str) and value else None


def _log_json_refusal(endpoint: str, response: Response, client_id: str | None) -> None:
    """Log an OAuth error response (RFC 6749 §5.2 body) as the client received it."""
    if response.status_code < 400:
        return
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = str(body.get("error") or f"HTTP {response.status_code}")
    log_refusal(endpoint=endpoint, status=response.status_code, error=error, description=body.get("error_description"), client_id=client_id)


class AuthorizeEndpoint:
    def __init__(self, *, provider: AuthServerProvider, clients: ClientDirectory, issuer: str, pages: Pages) -> None:
        self._handler = AuthorizationHandler(provider)
        self._clients = clients
        self._issuer = issuer
        self._consent_url = issuer + CONSENT_PATH
        self._pages = pages

    async def __call__(self, request: Request) -> Response:
        params = request.query_params if request.method == "GET" else await request.form()
        client_id = _client_id(params)
        if client_id is not None and client_id.startswith("https://"):
            # A metadata-document client that cannot be resolved: say why (the SDK would only
            # say "not found"), on a page, since its redirect URIs are unknown.
            problem = await self._clients.problem(client_id)
            if problem is not None:
                error = "temporarily_unavailable" if problem.temporary else "invalid_client"
                status = 503 if problem.temporary else 400
                log_refusal(endpoint="/authorize", status=status, error=error, description=problem.message, client_id=client_id)
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
        elif isinstance(client_id, str):
            # Read here first: a storage outage then reaches the outage layer (503) from our
            # code, rather than the SDK handler's catch-all, which logs a traceback for it.
            await self._clients.get(client_id)
        response = await self._handler.handle(request)
        location = response.headers.get("location")
        if response.status_code in (302, 303) and location and not location.startswith(self._consent_url + "?"):
            # An error redirect to the client's registered redirect_uri: add iss (RFC 9207 §2).
            location = with_query(location, iss=self._issuer)
            query = dict(parse_qsl(urlsplit(location).query))
            log_refusal(
                endpoint="/authorize",
                status=response.status_code,
                error=query.get("error", "-"),
                description=query.get("error_description"),
                client_id=client_id,
            )
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
        _log_json_refusal("/authorize", response, client_id)
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
    def __init__(self, *, provider: AuthServerProvider, resources: Resources, authenticator: ClientAuthenticator) -> None:
        self._handler = TokenHandler(provider, authenticator)
        self._resources = resources

    async def __call__(self, request: Request) -> Response:
        try:
            request = await with_client_id(request)
            form = await request.form()
        except Exception:  # noqa: BLE001 - python-multipart raises several types for a malformed body
            response: Response = _oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
            _log_json_refusal("/token", response, None)
            return response
        response = await self._answer(request, form)
        _log_json_refusal("/token", response, _client_id(form))
        return response

    async def _answer(self, request: Request, form: FormData) -> Response:
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type not in _GRANT_TYPES:
            # RFC 6749 §5.2
            return _oauth_error(400, "unsupported_grant_type", f"grant_type must be one of {', '.join(sorted(_GRANT_TYPES))}")
        for resource in form.getlist("resource"):
            if not isinstance(resource, str) or self._resources.find(resource) is None:
                # RFC 8707 §2
                return _oauth_error(400, "invalid_target", "the resource parameter does not name an MCP server served here")
        return await self._handler.handle(request)


class RegisterEndpoint:
    """The SDK's RFC 7591 handler, with its refusals logged."""

    def __init__(self, *, handler: RegistrationHandler) -> None:
        self._handler = handler

    async def __call__(self, request: Request) -> Response:
        response = await self._handler.handle(request)
        _log_json_refusal("/register", response, None)
        return response


class RevocationForm(BaseModel):
    token: str
    token_type_hint: Literal["access_token", "refresh_token"] | str | None = None


class RevokeEndpoint:
    def __init__(self, *, provider: AuthServerProvider, authenticator: ClientAuthenticator) -> None:
        self._provider = provider
        self._authenticator = authenticator

    async def __call__(self, request: Request) -> Response:
        try:
            request = await with_client_id(request)
            client_id = _client_id(await request.form())
        except Exception:  # noqa: BLE001 - python-multipart raises several types for a malformed body
            client_id = None
        response = await self._answer(request)
        _log_json_refusal("/revoke", response, client_id)
        return response

    async def _answer(self, request: Request) -> Response:
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
