"""The server's one layer around every request (SERVER_LAYERS in app/__init__.py, after the
proxy headers): the access log, the loopback alias check, outages answered 503, and the MCP
endpoints' shortcut past the router, as steps of one ASGI call in that order.

Each step is its own module (access_log.py, loopback_alias.py, outage.py); they run here in one
call rather than as four middleware because every tool call passes through all of them: four
layers cost four coroutines and, for each response message, two more send wrappers, which
together were a third of what authentication added to a tool call (bench/instructions.py).
The order keeps what each step's place meant as a layer of its own:
- the access log is outermost: every answer below, a 421 for the other loopback name and a 503
  for an outage included, carries the request id and gets one line with its status;
- the loopback alias check answers before any route (URLs in answers name the issuer);
- an outage anywhere below, tool calls included, becomes 503 with Retry-After;
- the MCP endpoints (/mcp and each gateway upstream's /mcp/NAME) go straight to their guarded
  apps, without Starlette's exception layer and router, which only repeat what these endpoints
  do for themselves (they answer their own errors, and take every method).
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_mcp.http.access_log import AccessLog
from auth_mcp.http.headers import request_headers
from auth_mcp.http.logs import request_id
from auth_mcp.http.loopback_alias import LoopbackAlias
from auth_mcp.http.outage import OutageResponses, unwatch_request, watch_request
from auth_mcp.http.read_deadlines import BODY_TIMED_OUT


class EveryRequest:
    # The steps, in the order __call__ takes them (app/__init__.py's SERVER_LAYERS, their reasons).
    STEPS: tuple[str, ...] = ("access_log", "loopback_alias", "outage", "mcp_shortcut")

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: AccessLog,
        loopback_alias: LoopbackAlias | None,
        outages: OutageResponses,
        endpoints: Sequence[Route],
    ) -> None:
        """`app` is the router; `endpoints` the MCP endpoints' routes, taken past it by path."""
        self._app = app
        self._log = access_log
        self._alias = loopback_alias
        self._outages = outages
        self._endpoints = {route.path: route for route in endpoints}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = perf_counter()
        headers = request_headers(scope)
        rid = self._log.id_for(headers.get(b"x-request-id"))
        rid_header = (b"x-request-id", rid.encode())
        status: int | None = None  # None until the answer starts
        dropping = False  # the handler's own answer to a noted outage, replaced by a 503
        outage, watching = watch_request()

        async def send_noted(message: Message) -> None:
            nonlocal status, dropping
            if dropping:
                return
            if message["type"] == "http.response.start":
                if status is None and outage.noted is not None:
                    dropping = True
                    status = 503
                    await self._outages.answer(scope, receive, _with_id(send, rid_header), outage.noted)
                    return
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        reset = request_id.set(rid)
        try:
            if self._alias is not None and await self._alias.answered(scope, headers, send_noted):
                return
            route = self._endpoints.get(scope["path"])
            if route is not None:
                scope["route"] = route  # as the router would set it (access log, metrics)
                await route.app(scope, receive, send_noted)
            else:
                await self._app(scope, receive, send_noted)
        except Exception as exc:
            found = self._outages.find(exc)
            if found is None:
                if BODY_TIMED_OUT in scope:
                    return  # answered 408 by the server itself (read_deadlines.py): nothing to report
                raise
            if status is None:
                status = 503
                await self._outages.answer(scope, receive, _with_id(send, rid_header), found)
            elif not dropping:
                self._outages.too_late(scope, found)
        finally:
            unwatch_request(watching)
            self._log.finish(scope, rid, status or 500, started)
            request_id.reset(reset)


def _with_id(send: Send, rid_header: tuple[bytes, bytes]) -> Send:
    """`send` adding the request id to the answer's head (for the 503 made here)."""

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), rid_header]
        await send(message)

    return send_with_id
