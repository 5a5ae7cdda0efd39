"""Stateless streamable HTTP offers no server-initiated stream: GET on the endpoint is 405.

MCP basic/transports, "Listening for Messages from the Server": the client MAY issue a GET to
open an SSE stream, and "the server MUST either return Content-Type: text/event-stream in
response to this HTTP GET, or else return HTTP 405 Method Not Allowed, indicating that the
server does not offer an SSE stream at this endpoint". A stateless server has nothing to send
on such a stream, so we answer 405: the SDK would otherwise hold each one open for good (one
token opened 1,000 of them: +76 MB and +1,000 file descriptors, surviving revocation).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

_BODY = b"This server offers no server-initiated stream; send requests with POST.\n"


class NoServerStream:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Returns the coroutine to await: a POST costs no frame of this layer's while it is served.
        if scope["type"] == "http" and scope["method"] == "GET":
            return _refuse_stream(send)
        return self._app(scope, receive, send)


async def _refuse_stream(send: Send) -> None:
    headers = [
        (b"allow", b"POST"),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_BODY)).encode()),
    ]
    await send({"type": "http.response.start", "status": 405, "headers": headers})
    await send({"type": "http.response.body", "body": _BODY})
