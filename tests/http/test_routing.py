"""The MCP endpoints' shortcut past the router (http/routing.py `Shortcut`)."""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from auth_mcp.http.routing import AsgiEndpoint, Shortcut


class Reached:
    def __init__(self, name: str, log: list[tuple[str, object]]) -> None:
        self._name = name
        self._log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._log.append((self._name, scope.get("route")))


async def _nothing() -> dict[str, object]:
    return {}


async def _ignore(message: dict[str, object]) -> None:
    return None


async def test_each_endpoint_s_path_goes_straight_to_its_app_with_its_route_and_the_rest_to_the_router() -> None:
    log: list[tuple[str, object]] = []
    builtin = Route("/mcp", AsgiEndpoint(Reached("builtin", log)))
    upstream = Route("/mcp/notes", AsgiEndpoint(Reached("notes", log)))
    shortcut = Shortcut(Reached("router", log), routes=[builtin, upstream])
    for path in ("/mcp/notes", "/mcp", "/mcp/notes/", "/mcp/other", "/token"):
        await shortcut({"type": "http", "path": path, "method": "POST"}, _nothing, _ignore)
    await shortcut({"type": "websocket", "path": "/mcp"}, _nothing, _ignore)
    assert log == [
        ("notes", upstream),
        ("builtin", builtin),
        ("router", None),
        ("router", None),
        ("router", None),
        ("router", None),
    ]
