"""One write per answer: uvicorn's protocol, as auth-mcp serves with it, writes a JSON answer's
head and body with one call on the socket's transport; streams still leave event by event."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from auth_mcp.cli import server_config
from auth_mcp.http.one_write import FLUSH_BYTES, TurnBuffer
from auth_mcp.settings import Settings

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Socket(asyncio.Transport):
    """What the protocol writes, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed and not self.eof, "written after the end"
        self.writes.append(bytes(data))

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def json_app(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


async def serve_one(app: Any) -> Socket:
    """Run auth-mcp's uvicorn protocol over a recording transport until the app is done."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    config: uvicorn.Config = server_config(app, settings)
    config.load()
    protocol_class: type[HttpToolsProtocol] = config.http_protocol_class  # type: ignore[assignment]
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    socket = Socket()
    protocol.connection_made(socket)
    protocol.data_received(REQUEST)
    async with asyncio.timeout(5):
        while protocol.cycle is None or not protocol.cycle.response_complete:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0)
    await asyncio.sleep(0)  # the end of the turn in which the answer was written
    protocol.connection_lost(None)
    return socket


async def test_a_json_answer_leaves_in_one_write() -> None:
    socket = await serve_one(json_app)
    (write,) = socket.writes  # uvicorn alone writes twice: the head, then the body
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b'\r\n\r\n{"ok":true}')


async def test_a_stream_s_events_leave_as_they_are_sent() -> None:
    sent_first = asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await asyncio.sleep(0.05)
        sent_first.set()
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    socket = await serve_one(stream)
    assert sent_first.is_set()
    first, second = socket.writes  # the head with the first event; the second with the end of the chunks
    assert b"data: 1" in first and b"data: 2" not in first
    assert second == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"


async def test_closing_writes_what_is_held_first_and_nothing_after() -> None:
    loop = asyncio.get_running_loop()
    socket = Socket()
    buffer = TurnBuffer(socket, loop)
    buffer.write(b"head ")
    buffer.write(b"body")
    assert socket.writes == []  # held until the end of the turn...
    buffer.close()  # ...or until the connection closes
    assert socket.writes == [b"head body"] and socket.closed
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing to write


async def test_the_end_of_the_output_comes_after_what_is_held() -> None:
    socket = Socket()
    buffer = TurnBuffer(socket, asyncio.get_running_loop())
    buffer.write(b"408")
    buffer.write_eof()
    assert socket.writes == [b"408"] and socket.eof


async def test_nothing_is_written_to_a_connection_that_closed_in_the_meantime() -> None:
    socket = Socket()
    buffer = TurnBuffer(socket, asyncio.get_running_loop())
    buffer.write(b"late")
    socket.close()  # the peer went away before the end of the turn
    await asyncio.sleep(0)
    assert socket.writes == []


async def test_a_large_body_sent_within_one_turn_reaches_the_transport_as_it_grows() -> None:
    socket = Socket()
    buffer = TurnBuffer(socket, asyncio.get_running_loop())
    chunk = b"x" * 16_384
    for _ in range(8):  # 128 KiB in one turn: held only up to FLUSH_BYTES at a time
        buffer.write(chunk)
    assert [len(write) for write in socket.writes] == [FLUSH_BYTES, FLUSH_BYTES]
    buffer.write(b"end")
    await asyncio.sleep(0)
    assert socket.writes[-1] == b"end"


async def test_what_is_written_after_the_end_of_the_output_is_dropped_and_closing_still_closes() -> None:
    socket = Socket()
    buffer = TurnBuffer(socket, asyncio.get_running_loop())
    buffer.write(b"408")
    buffer.write_eof()
    buffer.write(b"late event")  # a stream's next event, or a 100 Continue, after the 408
    buffer.flush()  # the end-of-turn flush: a real transport raises on a write after write_eof()
    buffer.close()
    assert socket.writes == [b"408"] and socket.eof and socket.closed
