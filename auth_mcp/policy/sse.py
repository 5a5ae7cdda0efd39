"""Server-sent events, rewritten event by event as a stream passes (for `Exchange.relay`).

A stream arrives in chunks that cut events anywhere. This keeps the bytes of the event being
received, and once it is complete (a blank line, WHATWG HTML §9.2.6) hands its data to
`rewrite`. An event whose data comes back unchanged is sent byte for byte as it came; a changed
one is sent with one `data:` line in place of its data lines, its other fields (`id:`, `event:`,
`retry:`) kept in order. Nothing is held beyond the current event, and an event larger than
`max_event_bytes` ends the stream (`SseOverflow`) rather than pass unexamined.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


class SseOverflow(ValueError):
    """One event grew past the limit."""


class SseRewriter:
    def __init__(self, rewrite: Callable[[bytes], bytes], *, max_event_bytes: int) -> None:
        self._rewrite = rewrite
        self._max = max_event_bytes
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes that can be sent now: every event completed by `chunk`."""
        buffer = self._pending + chunk
        out: list[bytes] = []
        start = 0
        for end in _EVENT_END.finditer(buffer):
            out.append(self._event(buffer[start : end.start()]) + end.group())
            start = end.end()
        self._pending = buffer[start:]
        if len(self._pending) > self._max:
            raise SseOverflow(f"an event of more than {self._max} bytes")
        return b"".join(out)

    def close(self) -> bytes:
        """What is left when the stream ends: an unfinished event is dispatched by no client."""
        rest, self._pending = self._pending, b""
        return rest

    def _event(self, raw: bytes) -> bytes:
        lines = _LINE.split(raw)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return raw
        joined = b"\n".join(data)
        rewritten = self._rewrite(joined)
        if rewritten is joined or rewritten == joined:
            return raw
        kept: list[bytes] = []
        placed = False
        for line in lines:
            if not line.startswith(b"data:"):
                kept.append(line)
            elif not placed:
                kept.append(b"data: " + rewritten)
                placed = True
        return b"\n".join(kept)
