"""Connections that end: a deadline for a request's headers and another for its body.

uvicorn times out idle keep-alive connections, but not a connection that never sends anything,
nor one that sends its headers or body a byte at a time: each such connection holds a file
descriptor forever, and about a thousand of them stopped the server from accepting any other.

`read_deadline_protocol(header_seconds, body_seconds)` is uvicorn's httptools protocol with one
timer for the part of a request that has not arrived yet:
- headers: from the moment a connection opens (and from the first byte of each later request on
  it) until its headers are complete; when it fires the connection gets a 408 and is closed;
- body: from the headers until the whole body is in. When it fires, the client gets a 408 with
  `Connection: close` (if no answer has started), the application sees the client as gone (its
  `receive()` returns `http.disconnect`, and what it sends is dropped), the request is marked
  `BODY_TIMED_OUT` in its scope (the access log reports it as a 408, and the failure this causes
  in the application, a read of a body that will never come, ends quietly in every_request.py:
  the client was answered, there is nothing to report) and the connection closes.
  Once the body is complete the deadline no longer applies, so a response stream (SSE) can wait
  for the client's disconnect as long as it likes.
Either way the connection closes in stages (RFC 9112 §9.6): the 408 and our end of the connection
go first, what the client still sends is read and dropped, and the socket closes when the client
closes its end or is aborted LINGER_SECONDS later. Closed at once, a socket with unread input
makes the kernel reset the connection, and a reset can destroy the 408 before the client reads
it. (A pipelined request whose headers come too slowly while the answer before it still streams
only ends the connection with that answer.)
A timer is armed only when the bytes at hand leave a part unfinished: a request that arrives
whole, the common case, costs no timer and nothing per request in the application. (This was an
ASGI middleware with a timeout around each `receive()`: about a quarter of what authentication
added to a tool call, callgrind and bytecode counts.)
"""

from __future__ import annotations

import asyncio
from typing import Literal

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

BODY_TIMED_OUT = "auth_mcp.body_timed_out"  # ASGI scope key, set on a request whose body came too slowly
LINGER_SECONDS = 2.0


def _timeout_response(text: bytes) -> bytes:
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(text)
        + text
    )


_HEADERS_TOO_SLOW = _timeout_response(b"The request headers came too slowly.\n")
_BODY_TOO_SLOW = _timeout_response(b"The request body came too slowly.\n")


def read_deadline_protocol(header_seconds: float, body_seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose headers take over
    `header_seconds` or whose body takes over `body_seconds` (the module docstring)."""

    class ReadDeadlineProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _waiting_for: Literal["headers", "body"] | None = None  # what the current request lacks
        _lingering = False  # timed out: what arrives is dropped until the connection closes

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._waiting_for = "headers"
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return
            super().data_received(data)
            # Armed once the bytes at hand are parsed, and only for an unfinished part.
            if self._waiting_for is not None and self._timer is None and not self.transport.is_closing():
                self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._waiting_for = "headers"

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            self._waiting_for = "body"

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._waiting_for = None
            self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            seconds = header_seconds if self._waiting_for == "headers" else body_seconds
            self._timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if self._waiting_for == "body":
                # (A request answered before its body came, e.g. 401, needs nothing but the close.)
                if cycle is not None and not cycle.response_complete:
                    cycle.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
                    if not cycle.response_started:
                        self.transport.write(_BODY_TOO_SLOW)
                    cycle.disconnected = True  # the application's receive() returns http.disconnect
                    cycle.message_event.set()
            elif cycle is None or cycle.response_complete:
                # No request of ours is in flight on this connection: nothing else will answer.
                self.transport.write(_HEADERS_TOO_SLOW)
            else:
                # A pipelined request too slow while the previous answer (a stream) still goes
                # out: that answer ends as it will, and the connection with it.
                cycle.keep_alive = False
                return
            self._lingering = True
            _close_in_stages(self.transport, self.loop)

    return ReadDeadlineProtocol


def _close_in_stages(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
    """Our answer and the end of our output first, so the client reads them; the socket aborted
    LINGER_SECONDS later (a client that neither reads nor closes does not keep it)."""
    if transport.can_write_eof():
        transport.write_eof()
        loop.call_later(LINGER_SECONDS, transport.abort)
    else:
        transport.close()
