"""Per request: an id (X-Request-Id, also in every log line of the request), one access-log line
(method, path, never the query string: it carries OAuth codes and states), status, duration,
and the latency histogram. On the MCP endpoint the line also names the person (GitHub login and
numeric id) and the tool called, which the bearer guard leaves in the ASGI scope under
`PERSON_KEY`, `PERSON_ID_KEY` and `TOOL_KEY`. The same fields go to the JSON format as keys.

Every request, tool calls included, passes here (from http/every_request.py), so it is written
for the hot path: nothing is made per request beyond the id. The line itself is neither formatted
nor written by the thread serving requests: with INFO on, the request hands a tuple of its fields
to the log writer (log_writer.py), whose thread does the rest.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from time import perf_counter, time
from typing import Any

from starlette.types import Scope

from auth_mcp.http.log_writer import LogWriter
from auth_mcp.http.logs import Line
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.read_deadlines import BODY_TIMED_OUT

_NAME = "auth_mcp.access"
logger = logging.getLogger(_NAME)

_SAFE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")  # the whole value (fullmatch)
# Request ids only need to be unique, not secret: a per-process random prefix and a counter.
_PREFIX = os.urandom(8).hex()
_METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"})
_COUNTER = itertools.count(1)
# ASGI scope keys the resource server fills in for this log (no import of domain code needed).
PERSON_KEY = "auth_mcp.person"
PERSON_ID_KEY = "auth_mcp.person_id"
TOOL_KEY = "auth_mcp.tool"


class AccessLog:
    """The access log's two moments, called by the server's one layer (http/every_request.py)
    around every request: `id_for` when it arrives, `finish` when it has been answered."""

    def __init__(self, *, metrics: Metrics, lines: LogWriter) -> None:
        self._latency = metrics.request_seconds
        self._lines = lines

    @staticmethod
    def id_for(incoming: bytes | None) -> str:
        """A proxy's request id (`incoming`) is kept when it is a plain token; anything else is replaced."""
        if incoming is not None and _SAFE_ID.fullmatch(incoming):
            return incoming.decode()
        return f"{_PREFIX}{next(_COUNTER):016x}"

    def finish(self, scope: Scope, rid: str, status: int, started: float) -> None:
        """The latency histogram, and the line (made and written on the log writer's thread)."""
        elapsed = perf_counter() - started
        if BODY_TIMED_OUT in scope:  # answered 408 by the server itself (read_deadlines.py)
            status = 408
        method = scope["method"]
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        # Label values stay bounded: route templates, known methods, status codes.
        self._latency.observe((route, method if method in _METHODS else "OTHER", status), elapsed)
        if logger.isEnabledFor(logging.INFO):
            # The client as the request arrived (after trusted proxies' headers).
            client, path = scope.get("client"), scope.get("path", "")
            person, person_id, tool = scope.get(PERSON_KEY), scope.get(PERSON_ID_KEY), scope.get(TOOL_KEY)
            self._lines.submit(_line, (time(), rid, client, method, path, status, elapsed, person, person_id, tool))


def _line(item: tuple[Any, ...]) -> Line:
    """The access line of one request, made on the log writer's thread. Its message is written out
    here, in one f-string, and taken as it is when all of it is printable ASCII (a `Line` without
    arguments: logs.py escapes nothing in it); a value with anything else in it (a decoded path, a
    tool's name) takes the template and arguments, whose values the formatters escape."""
    created, rid, client, method, path, status, elapsed, person, person_id, tool = item
    address, duration = client[0] if client else "-", elapsed * 1000
    extra = functools.partial(_fields, item)
    if person is None:
        message = f'{address} "{method} {path}" {status} {duration:.1f}ms'
    else:
        tool = tool or "-"
        message = f'{address} "{method} {path}" {status} {duration:.1f}ms person={person} id={person_id} tool={tool}'
    if message.isascii() and message.isprintable():
        return Line(_NAME, created, rid, message, (), extra)
    if person is None:
        return Line(_NAME, created, rid, '%s "%s %s" %d %.1fms', (address, method, path, status, duration), extra)
    template = '%s "%s %s" %d %.1fms person=%s id=%s tool=%s'
    return Line(_NAME, created, rid, template, (address, method, path, status, duration, person, person_id, tool), extra)


def _fields(item: tuple[Any, ...]) -> dict[str, Any]:
    """The line's `extra` (keys of their own in the JSON format), made only when a handler reads them."""
    _, _, client, method, path, status, elapsed, person, person_id, tool = item
    address = client[0] if client else "-"
    fields = {"client_address": address, "method": method, "path": path, "status": status, "duration_ms": round(elapsed * 1000, 1)}
    if person is not None:
        fields.update(person=person, person_id=person_id, tool=tool)
    return fields
