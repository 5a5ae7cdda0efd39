"""Small pieces for putting ASGI apps on routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AsgiEndpoint:
    """An ASGI callable as a Route endpoint (Starlette would treat a bound method as a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class Shortcut:
    """Takes requests for the MCP endpoints' paths straight to their routes' apps.

    Every tool call is a request to an MCP endpoint (/mcp, or a gateway upstream's /mcp/NAME):
    this hands it to the (guarded) app directly, without Starlette's exception layer and router,
    which only repeat what the endpoints do for themselves (they answer their own errors, and
    take every method). Everything else goes through the router.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[Route]) -> None:
        self._app = app
        self._routes = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is not None:
            scope["route"] = route  # as the router would set it (access log, metrics)
            await route.app(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def body_limited(handler: Any, limit: int) -> ASGIApp:
    """A request handler whose body may not exceed `limit` bytes (413 otherwise)."""
    return RequestBodyLimitMiddleware(request_response(handler), limit)


class NoStore:
    """Adds `Cache-Control: no-store` to every answer of an app whose answers carry credentials."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
            await send(message)

        await self._app(scope, receive, send_no_store)
