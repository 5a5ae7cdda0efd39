"""Connections that end: a deadline for a request's headers and another for its body.

uvicorn times out idle keep-alive connections, but not a connection that never sends anything,
nor one that sends its headers or body a byte at a time: each such connection holds a file
descriptor forever, and about a thousand of them stopped the server from accepting any other.

- Headers: `header_deadline_protocol(seconds)` is uvicorn's httptools protocol with a timer from
  the moment a connection opens (and from the first byte of each later request on it) until its
  headers are complete; when it fires the connection gets a 408 and is closed.
- Body: `BodyReadDeadline` gives each request `seconds` to deliver its whole body to the
  application. When they run out the application sees the client as gone and the client gets a
  408 with `Connection: close`. Once the body is complete the deadline no longer applies, so a
  response stream (SSE) can wait for the client's disconnect as long as it likes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEADERS_TOO_SLOW = b"The request headers came too slowly.\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_HEADERS_TOO_SLOW)
    + _HEADERS_TOO_SLOW
)


def header_deadline_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose headers take over `seconds`."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                # No request of ours is in flight on this connection: nothing else will answer.
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    return HeaderDeadlineProtocol


class BodyReadDeadline:
    """ASGI middleware: a request's body must arrive within `seconds` of the request starting."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self._app = app
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._seconds
        state: dict[str, Any] = {"body_complete": False, "timed_out": False, "started": False}

        async def timed_receive() -> Message:
            if state["body_complete"]:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                state["timed_out"] = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_complete"] = True
            return message

        async def guarded_send(message: Message) -> None:
            if state["timed_out"] and not state["started"]:
                return  # the 408 below answers instead
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, timed_receive, guarded_send)
        except Exception:
            if not state["timed_out"]:
                raise
        if state["timed_out"] and not state["started"]:
            await _send_timeout(send)


async def _send_timeout(send: Send) -> None:
    body = b"The request body came too slowly.\n"
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
