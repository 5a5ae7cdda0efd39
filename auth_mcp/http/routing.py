"""Small pieces for putting ASGI apps on routes."""

from __future__ import annotations

from typing import Any

from mcp.server.transport_security import RequestBodyLimitMiddleware
from starlette.routing import request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AsgiEndpoint:
    """An ASGI callable as a Route endpoint (Starlette would treat a bound method as a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
