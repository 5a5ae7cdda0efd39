"""Client authentication at /token and /revoke: the SDK's `ClientAuthenticator` (none,
client_secret_post, client_secret_basic), plus `private_key_jwt` (RFC 7523 §2.2) for clients
whose metadata document chose it.

The method is the client's, not the request's (RFC 6749 §2.3: a client uses one method): a
`private_key_jwt` client must send an assertion, and an assertion from any other client is
refused rather than ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import jwt
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import OAuthAuthorizationServerProvider
from mcp.shared.auth import OAuthClientInformationFull
from starlette.requests import Request
from starlette.types import Message

from auth_mcp.authorization.client_assertion import (
    CLIENT_ASSERTION_TYPE,
    PRIVATE_KEY_JWT,
    AssertionRefused,
    ClientAssertions,
    KeySource,
)
from auth_mcp.authorization.clients import RegisteredClient


class ClientAuthentication(ClientAuthenticator):
    def __init__(self, provider: OAuthAuthorizationServerProvider[Any, Any, Any], *, assertions: ClientAssertions) -> None:
        super().__init__(provider)
        self._assertions = assertions

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if assertion_type is None and assertion is None:
            client_id = form.get("client_id")
            if isinstance(client_id, str) and client_id:
                client = await self.provider.get_client(client_id)
                if client is not None and client.token_endpoint_auth_method == PRIVATE_KEY_JWT:
                    raise AuthenticationError(
                        "this client authenticates with private_key_jwt: send client_assertion and client_assertion_type"
                    )
            return await super().authenticate_request(request)
        if assertion_type != CLIENT_ASSERTION_TYPE:
            raise AuthenticationError(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        if not isinstance(assertion, str) or not assertion:
            raise AuthenticationError("client_assertion is required with client_assertion_type")
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise AuthenticationError("Missing client_id")
        client = await self.provider.get_client(client_id)
        if client is None:
            raise AuthenticationError("Invalid client_id")
        if client.token_endpoint_auth_method != PRIVATE_KEY_JWT:
            raise AuthenticationError(
                f"this client authenticates with {client.token_endpoint_auth_method}, not with a client_assertion"
            )
        source = KeySource(
            client_id=client_id,
            jwks=client.jwks,
            jwks_uri=str(client.jwks_uri) if client.jwks_uri is not None else None,
            signing_alg=client.token_endpoint_auth_signing_alg if isinstance(client, RegisteredClient) else None,
        )
        try:
            await self._assertions.verify(assertion, client_id=client_id, source=source)
        except AssertionRefused as exc:
            raise AuthenticationError(str(exc)) from None
        return client


async def with_client_id(request: Request) -> Request:
    """The request, with `client_id` added to its form from the assertion's `iss` when the client
    left it out: RFC 6749 §4.1.3 requires client_id only of clients that do not authenticate, and
    the SDK's token handler reads it from the form. The assertion is verified later, including
    that `iss` is this client_id, so an unverified read here decides nothing."""
    form = await request.form()
    assertion = form.get("client_assertion")
    if form.get("client_id") or not isinstance(assertion, str) or not assertion:
        return request
    try:
        issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return request
    if not isinstance(issuer, str) or not issuer:
        return request
    fields = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    body = urlencode([*fields, ("client_id", issuer)]).encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-length"]
    scope = {**request.scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)
