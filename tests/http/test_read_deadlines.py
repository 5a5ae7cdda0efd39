"""Connections that end: slow headers and slow bodies are cut off on a real loopback server.

Measured on main before the deadlines: 1,100 half-sent requests blocked every new connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from auth_mcp.http.one_write import one_write_per_turn
from auth_mcp.http.read_deadlines import read_deadline_protocol
from tests.support.server import run_server

WAIT = 10.0  # upper bound on how long a test waits for the server to act (never reached when it works)


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(WAIT):
        return await reader.read()


async def test_a_connection_that_sends_nothing_is_closed(db_url: str) -> None:
    async with run_server(database_url=db_url, header_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await _answer(reader)
        assert answer.startswith(b"HTTP/1.1 408") and loop.time() - started < 3
        writer.close()


async def test_half_sent_headers_get_408_and_the_connection_closes(db_url: str) -> None:
    async with run_server(database_url=db_url, header_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        answer = await _answer(reader)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()


async def test_a_client_still_sending_after_the_deadline_is_not_reset_and_reads_its_408(db_url: str) -> None:
    # RFC 9112 §9.6: closed at once, the server's socket answers late bytes with a reset, which
    # breaks the client's next write (ConnectionResetError) and can erase the 408 before it is read.
    async with run_server(database_url=db_url, header_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        writer.transport.pause_reading()  # what the server sends stays in the kernel's buffer
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        await asyncio.sleep(0.8)  # the 408 has been sent
        for _ in range(2):
            writer.write(b"X-Late: " + b"a" * 30_000 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)  # a reset, if the server sends one, arrives in the meantime
        writer.transport.resume_reading()
        answer = await _answer(reader)
        assert answer.startswith(b"HTTP/1.1 408") and answer.endswith(b"The request headers came too slowly.\n")
        writer.close()


async def test_headers_dripped_a_byte_at_a_time_do_not_extend_the_deadline(db_url: str) -> None:
    async with run_server(database_url=db_url, header_timeout=0.5) as server:
        reader, writer = await _open(server.port)
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 200
        closed = asyncio.create_task(_answer(reader))
        for byte in request:
            if closed.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.wait({closed}, timeout=0.01)  # a slow client, not a sleep in the server
        assert (await closed).startswith(b"HTTP/1.1 408")
        writer.close()


async def test_a_half_sent_body_gets_408(db_url: str) -> None:
    async with run_server(database_url=db_url, body_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        writer.write(
            b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\ngrant_type=auth"
        )
        await writer.drain()
        answer = await _answer(reader)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()


async def test_a_body_timeout_is_logged_as_a_408_without_a_traceback(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with run_server(database_url=db_url, body_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        # /register reads its JSON body whole: the read that never completes fails in the handler.
        json_head = b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
        writer.write(b"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\n" + json_head)
        await writer.drain()
        assert (await _answer(reader)).startswith(b"HTTP/1.1 408")
        writer.close()
        server.services.log_writer.flush()
        await asyncio.sleep(0.2)  # the application's side of the request ends after the 408
        server.services.log_writer.flush()
    access = [r.getMessage() for r in caplog.records if r.name == "auth_mcp.access"]
    assert any('"POST /register" 408' in line for line in access), access
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


async def test_a_body_that_arrives_whole_with_its_headers_arms_no_timer(db_url: str) -> None:
    async with run_server(database_url=db_url, body_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        body = b"grant_type=x"
        request = b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        writer.write(request + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400")
        await asyncio.sleep(0.5)  # past the body deadline: the connection stays open for the next request
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert b"HTTP/1.1 200" in await _answer(reader)
        writer.close()


async def test_a_request_answered_before_its_body_came_is_closed_at_the_body_deadline_without_a_second_answer(
    db_url: str,
) -> None:
    async with run_server(database_url=db_url, body_timeout=0.3) as server:
        reader, writer = await _open(server.port)
        writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
        await writer.drain()
        answer = await _answer(reader)  # 401 at once (no token), then the close at the deadline
        assert answer.startswith(b"HTTP/1.1 401") and answer.count(b"HTTP/1.1 ") == 1
        writer.close()


async def test_requests_within_the_deadlines_and_keep_alive_still_work(db_url: str) -> None:
    async with run_server(database_url=db_url, header_timeout=0.5, body_timeout=0.5) as server:
        reader, writer = await _open(server.port)
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(WAIT):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                length = int(
                    next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                )
                await reader.readexactly(length)
        writer.close()


async def test_many_slow_connections_do_not_block_a_new_one(db_url: str) -> None:
    async with run_server(database_url=db_url, header_timeout=0.3) as server:
        slow = [await _open(server.port) for _ in range(200)]
        for _, writer in slow:
            writer.write(b"GET / HTTP/1.1\r\n")
        # Every slow connection is cut off, and a well-behaved client is then served.
        answers = await asyncio.gather(*(_answer(reader) for reader, _ in slow))
        assert all(answer.startswith(b"HTTP/1.1 408") or answer == b"" for answer in answers)
        reader, writer = await _open(server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await _answer(reader)).startswith(b"HTTP/1.1 200")
        for _, slow_writer in slow:
            slow_writer.close()
        writer.close()


async def test_a_pipelined_request_too_slow_during_a_stream_ends_the_connection_with_the_stream() -> None:
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for number in range(8):  # 0.4 s: past the next request's header deadline
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % number, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    loop = asyncio.get_running_loop()
    failures: list[Any] = []
    loop.set_exception_handler(lambda _loop, context: failures.append(context))
    protocol = one_write_per_turn(read_deadline_protocol(0.2, 0.2))
    config = uvicorn.Config(stream, host="127.0.0.1", port=0, lifespan="off", log_config=None, http=protocol)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await _open(port)
        # The second request's head never ends: its deadline passes while the stream still runs.
        writer.write(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /b HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        answer = await _answer(reader)  # everything until the server closes the connection
        writer.close()
    finally:
        server.should_exit = True
        await task
        loop.set_exception_handler(None)
    assert answer.count(b"data: ") == 8 and answer.endswith(b"0\r\n\r\n")  # the whole stream, then the close
    assert b"408" not in answer and failures == []
