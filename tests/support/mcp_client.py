"""The official MCP SDK client doing the whole OAuth flow: discovery, registration, PKCE, the
browser (scripted), token exchange, refresh."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.support.browser import Browser

DEFAULT_REDIRECT = "http://127.0.0.1:33418/callback"


@dataclass
class MemoryStorage:
    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class AuthorizationFailed(Exception):
    def __init__(self, params: dict[str, str]) -> None:
        self.params = params
        super().__init__(f"authorization ended with {params}")


@dataclass
class OAuthUser:
    """One person using one MCP client: its storage, its browser and the last redirect seen."""

    browser: Browser = field(default_factory=Browser)
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    redirect_uri: str = DEFAULT_REDIRECT
    client_name: str = "Test MCP client"
    scope: str | None = None
    last_redirect: str | None = None
    authorizations: int = 0
    client_metadata_url: str | None = None
    auth: OAuthClientProvider | None = None

    def provider(self, server_url: str) -> OAuthClientProvider:
        async def redirect_handler(authorization_url: str) -> None:
            self.authorizations += 1
            self.last_redirect = await self.browser.go(authorization_url, until=self.redirect_uri)

        async def callback_handler() -> AuthorizationCodeResult:
            assert self.last_redirect is not None
            params = {k: v[0] for k, v in parse_qs(urlsplit(self.last_redirect).query).items()}
            if "code" not in params:
                raise AuthorizationFailed(params)
            return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

        metadata = OAuthClientMetadata(
            client_name=self.client_name,
            redirect_uris=[self.redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope=self.scope,
        )
        self.auth = OAuthClientProvider(
            server_url=server_url,
            client_metadata=metadata,
            storage=self.storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
            client_metadata_url=self.client_metadata_url,
        )
        return self.auth


@contextlib.asynccontextmanager
async def connect(
    server_url: str, user: OAuthUser, *, mode: Literal["auto", "legacy"] = "auto", **options: Any
) -> AsyncIterator[Client]:
    """An MCP `Client` connected through OAuth: streamable HTTP for /mcp, SSE for /sse.
    `options` go to `Client` (sampling_callback, elicitation_callback, ...)."""
    auth = user.provider(server_url)
    if server_url.endswith("/sse"):
        async with Client(sse_client(server_url, auth=auth), mode="legacy", **options) as client:
            yield client
        return
    async with (
        httpx2.AsyncClient(auth=auth, timeout=30) as http,
        Client(streamable_http_client(server_url, http_client=http), mode=mode, **options) as client,
    ):
        yield client
