"""503 with `Retry-After` when a dependency is out, on every endpoint, whatever caught the failure.

A failure that says "not now" (app.py decides which: storage outages) is answered
`503 Service Unavailable` with `Retry-After` and one log line, never a 500 and a traceback:
- when it propagates out of any handler before the response started;
- when a handler caught it and answered something else: the MCP SDK turns exceptions in tools
  into error results and its /authorize handler has a catch-all. Code that catches an outage calls
  `note_outage`, and the answer it made is replaced by the 503 (a client that got "client not
  found" or an error result for an outage would give up instead of retrying).
A response already started (an SSE stream) cannot be replaced: the stream ends, with one log line.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from auth_mcp.http.pages import Pages

logger = logging.getLogger(__name__)


class Outage(Protocol):
    """What an outage means: when the client may come back, what it is told, and (for the log) why."""

    @property
    def retry_after(self) -> int: ...  # seconds
    @property
    def message(self) -> str: ...  # for the client: "The server cannot reach its database right now."
    @property
    def reason(self) -> str: ...  # for the log line: the failure, without SQL or parameters


@dataclass(frozen=True, slots=True)
class Unavailable:
    """An `Outage` as a plain value."""

    retry_after: int
    message: str
    reason: str


Classify = Callable[[BaseException], Outage | None]
"""An exception -> the outage it is, or None for every other failure (those propagate)."""


class RequestOutage:
    """What one request met: the outage noted by code that caught it, or None."""

    __slots__ = ("noted",)

    def __init__(self) -> None:
        self.noted: Outage | None = None


_current: contextvars.ContextVar[RequestOutage | None] = contextvars.ContextVar("auth_mcp_outage", default=None)


def note_outage(outage: Outage) -> None:
    """The current request met an outage that was caught and answered otherwise: answer 503."""
    state = _current.get()
    if state is not None and state.noted is None:
        state.noted = outage


def watch_request() -> tuple[RequestOutage, contextvars.Token[RequestOutage | None]]:
    """Start listening for `note_outage` in the current request; `unwatch_request(token)` ends it."""
    state = RequestOutage()
    return state, _current.set(state)


def unwatch_request(token: contextvars.Token[RequestOutage | None]) -> None:
    _current.reset(token)


class OutageResponses:
    """Which failures are outages, and the 503 with `Retry-After` they get (JSON, or a page for
    browsers). The server's one layer (http/every_request.py) asks `find` of every exception
    that leaves a request and replaces an answer made after `note_outage` with `answer`."""

    def __init__(self, *, classify: Classify, pages: Pages) -> None:
        self._classify = classify
        self._pages = pages

    def find(self, error: BaseException) -> Outage | None:
        """The outage behind `error`, also inside exception groups (anyio task groups raise those)."""
        found = self._classify(error)
        if found is not None:
            return found
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                found = self.find(inner)
                if found is not None:
                    return found
        return None

    def too_late(self, scope: Scope, outage: Outage) -> None:
        """An outage met after the answer started (an SSE stream): it ends, with one log line."""
        logger.warning("%s %r: the response had started when %s", scope["method"], scope["path"], outage.reason)

    async def answer(self, scope: Scope, receive: Receive, send: Send, outage: Outage) -> None:
        logger.warning("%s %r answered 503: %s", scope["method"], scope["path"], outage.reason)
        retry_after = str(max(1, outage.retry_after))
        description = f"{outage.message} Retry in {retry_after} seconds."
        accept = next((value for name, value in scope["headers"] if name == b"accept"), b"")
        if b"text/html" in accept:
            response = self._pages.error(
                status_code=503,
                title="Temporarily unavailable",
                message=description,
                hint="Reload this page in a few seconds.",
                error="temporarily_unavailable",
            )
            response.headers["Retry-After"] = retry_after
            await response(scope, receive, send)
            return
        # RFC 6749 §4.1.2.1's code for "try again later".
        body = {"error": "temporarily_unavailable", "error_description": description}
        headers = {"retry-after": retry_after, "cache-control": "no-store"}
        await JSONResponse(body, status_code=503, headers=headers)(scope, receive, send)
