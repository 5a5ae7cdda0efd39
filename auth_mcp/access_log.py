"""Per request: an id (X-Request-Id, also in every log line of the request), one access-log line
(method, path, never the query string: it carries OAuth codes and states), status, duration,
and the latency histogram."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import time

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_mcp.metrics import Metrics

logger = logging.getLogger("auth_mcp.access")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("auth_mcp_request_id", default="-")
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
# Request ids only need to be unique, not secret: a per-process random prefix and a counter.
_PREFIX = os.urandom(8).hex()
_METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"})
_COUNTER = itertools.count(1)


class AccessLog:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics
        self._latency: dict[tuple[str, str, int], Any] = {}  # label children, looked up once each

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        # A proxy's request id is kept when it is a plain token; anything else is replaced.
        rid = incoming.decode() if incoming is not None and _SAFE_ID.match(incoming) else f"{_PREFIX}{next(_COUNTER):016x}"
        reset = request_id.set(rid)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
            key = (getattr(route, "path", None) or "unmatched", method, status)
            histogram = self._latency.get(key)
            if histogram is None:
                histogram = self._latency[key] = self._metrics.request_seconds.labels(key[0], key[1], str(status))
            histogram.observe(elapsed)
            if logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                logger.info(
                    '%s "%s %s" %d %.1fms',
                    client[0] if client else "-",
                    scope["method"],
                    scope.get("path", ""),
                    status,
                    elapsed * 1000,
                )
            request_id.reset(reset)
