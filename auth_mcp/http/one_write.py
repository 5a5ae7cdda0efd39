"""One write per answer: a response's head and body leave the server together.

uvicorn writes a response's head as soon as the application sends `http.response.start`, and
its body with the next message: two `send` system calls and two TCP segments for every JSON
answer, and a client on another core woken twice. `one_write_per_turn(protocol)` hands uvicorn's
protocol a transport that holds what is written until the end of the event loop's current turn
and then writes it all with one call. An answer whose head and body the application sends in one
step (every JSON answer: nothing is awaited between the two) leaves in one write; the events of a
stream still leave as they are sent, each in its own turn. Closing writes what is held first, and
what uvicorn asks of the transport otherwise (pausing, addresses, ...) goes to the real one.
Past FLUSH_BYTES held, what is held is written at once: an application that sends a large body
in many messages within one turn still meets the transport's flow control (uvicorn waits for a
full socket buffer to drain before the next message) instead of piling everything up here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_BYTES = 64 * 1024


class TurnBuffer:
    """A transport's writes within one turn of the event loop, written as one."""

    __slots__ = ("_ended", "_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        self._ended = False  # write_eof() was called: what comes after is dropped, as a closed transport drops it

    def write(self, data: bytes) -> None:
        if self._ended:
            return
        held = self._held
        if held is None:
            self._held = [data]
            self._held_bytes = len(data)
            self._loop.call_soon(self.flush)
        else:
            held.append(data)
            self._held_bytes += len(data)
        if self._held_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._ended = True
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def one_write_per_turn(protocol: type[HttpToolsProtocol]) -> type[HttpToolsProtocol]:
    """`protocol` writing through a `TurnBuffer` (the module docstring)."""

    class OneWritePerTurn(protocol):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(TurnBuffer(transport, self.loop))

    return OneWritePerTurn
