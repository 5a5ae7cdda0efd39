"""CORS: for any origin on the OAuth endpoints browser-based clients call themselves, and for
exactly the configured origins on the MCP endpoint."""

from __future__ import annotations

from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

MCP_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "MCP-Protocol-Version",
    "Mcp-Session-Id",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
)
MCP_EXPOSED_HEADERS = ("Mcp-Session-Id", "WWW-Authenticate", "MCP-Protocol-Version")


class BrowserCors:
    """CORS on the MCP endpoint for exactly the configured browser origins (MCP Inspector 1.x in
    direct mode and other browser-based clients). Requests without an Origin skip it entirely."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=list(MCP_REQUEST_HEADERS),
            expose_headers=list(MCP_EXPOSED_HEADERS),
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if any(name == b"origin" for name, _ in scope["headers"]):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def public_cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    """CORS for any origin, as the SDK does for endpoints browser-based OAuth clients call
    themselves (metadata, token, registration, revocation). None of them uses cookies."""
    return CORSMiddleware(app=app, allow_origins="*", allow_methods=methods, allow_headers=[MCP_PROTOCOL_VERSION_HEADER])
