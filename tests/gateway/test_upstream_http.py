"""The gateway's HTTP/1.1 client against loopback upstreams written here, byte by byte: each promise
of auth_mcp/gateway/upstream_http.py's docstring, and what a hostile or broken upstream tries
(heads without end, answers out of turn, silence, a close at the worst moment)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from auth_mcp.gateway.upstream_http import (
    BUFFER_BYTES,
    MAX_HEAD_BYTES,
    Answer,
    BrokenAnswer,
    ConnectFailed,
    ConnectTimeout,
    ReadTimeout,
    Target,
    UpstreamHttp,
    _Connection,
)
from tests.support.tls import Certificates, private_authority

pytestmark = pytest.mark.timeout(10)  # a client that hangs fails its test at once, not after minutes

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
WAIT = 2.0  # the longest a test waits for something that happens at once on loopback
TIMEOUTS = {"connect_timeout": WAIT, "read_timeout": WAIT}


# A raw upstream: what it sees, and what it answers ------------------------------------------------


@dataclass
class Seen:
    """What the upstream saw: connections, requests (head and body), disconnects."""

    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    disconnects: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT), self.changed:
            await self.changed.wait_for(condition)

    async def note(self) -> None:
        async with self.changed:
            self.changed.notify_all()


@dataclass
class Peer:
    """One connection, as the upstream's handler sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    seen: Seen

    async def request(self) -> bytes | None:
        """The next request (head and body), or None once the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = next((int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0)
        request = head + await self.reader.readexactly(length)
        self.seen.requests.append(request)
        await self.seen.note()
        return request

    async def write(self, *pieces: bytes) -> None:
        """Each piece in a TCP write of its own."""
        for piece in pieces:
            self.writer.write(piece)
            await self.writer.drain()
            await asyncio.sleep(0)  # the client gets to read between the pieces


Handler = Callable[[Peer], Awaitable[None]]


@contextlib.asynccontextmanager
async def upstream(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Target, Seen]]:
    """A loopback server running `handler` for each connection, then waiting for the client to
    close it; stopped (its handlers cancelled) when the block ends."""
    seen = Seen()
    tasks: set[asyncio.Task[None]] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        seen.connections += 1
        await seen.note()
        try:
            # Cancelled when the server stops: ended here, or asyncio's streams would log it as an error.
            with contextlib.suppress(asyncio.CancelledError):
                await handler(Peer(reader, writer, seen))
                with contextlib.suppress(ConnectionError):
                    while await reader.read(65536):  # until the client closes it
                        continue
        finally:
            writer.close()
            seen.disconnects += 1
            await seen.note()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield Target.of(f"{scheme}://127.0.0.1:{port}/mcp"), seen
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def answering(*answers: bytes) -> Handler:
    """Answers each request on a connection with the next of `answers` (sent whole), then
    keeps the connection open."""

    async def handler(peer: Peer) -> None:
        for answer in answers:
            if await peer.request() is None:
                return
            await peer.write(answer)

    return handler


def always(answer: bytes) -> Handler:
    return answering(*[answer] * 20)


def first_then(first: bytes, then: bytes) -> Handler:
    """`first` to the upstream's first request, `then` to all others."""

    async def handler(peer: Peer) -> None:
        for _ in range(20):
            if await peer.request() is None:
                return
            await peer.write(first if len(peer.seen.requests) == 1 else then)

    return handler


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHttp]:
    client = UpstreamHttp()
    yield client
    await client.aclose()


async def fetch(http: UpstreamHttp, target: Target, method: bytes = b"GET", body: bytes = b"") -> tuple[int, bytes]:
    """The status and body of one request, read to the end and released, as the proxy does."""
    answer = await http.request(target, method, [], body, **TIMEOUTS)
    try:
        data = await answer.read(1 << 26)
        assert data is not None
        answer.release()
    finally:
        answer.close()
    return answer.status, data


async def body_of(answer: Answer) -> list[bytes]:
    chunks = []
    for _ in range(10_000):
        chunk = await answer.next_chunk()
        if chunk is None:
            return chunks
        chunks.append(chunk)
    raise AssertionError("the body did not end")


# Keep-alive ---------------------------------------------------------------------------------------


async def test_two_requests_in_a_row_share_one_connection(http: UpstreamHttp) -> None:
    async with upstream(always(OK)) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        assert await fetch(http, target, b"POST", b"{}") == (200, b"ok")
    assert seen.connections == 1
    assert seen.requests[1].endswith(b"content-length: 2\r\n\r\n{}")


@pytest.mark.parametrize(
    "closing",
    [b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"],
    ids=["connection close", "HTTP/1.0"],
)
async def test_an_answer_with_connection_close_is_not_reused(http: UpstreamHttp, closing: bytes) -> None:
    async with upstream(always(closing)) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        await seen.until(lambda: seen.disconnects == 1)  # the client closed it
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 2


@pytest.mark.parametrize("arrived", [b"first", b"all of it"], ids=["part arrived", "all arrived, unread"])
async def test_an_answer_released_before_its_end_is_not_reused(http: UpstreamHttp, arrived: bytes) -> None:
    long = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n" + arrived
    async with upstream(first_then(long, OK)) as (target, seen):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        if arrived == b"first":
            assert await answer.next_chunk() == b"first"
        answer.release()
        await seen.until(lambda: seen.disconnects == 1)
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 2


async def test_an_answer_closed_early_closes_its_connection(http: UpstreamHttp) -> None:
    async with upstream(always(OK)) as (target, seen):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        answer.close()
        await seen.until(lambda: seen.disconnects == 1)
        answer.release()  # a no-op once closed
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 2


# Bodies -------------------------------------------------------------------------------------------


async def test_a_body_by_content_length_arrives_whole_across_writes(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        for _ in range(2):
            await peer.request()
            await peer.write(b"HTTP/1.1 200 OK\r\nConte", b"nt-Length: 11\r\n\r\nhel", b"lo w", b"orld")

    async with upstream(handler) as (target, seen):
        assert await fetch(http, target) == (200, b"hello world")
        assert await fetch(http, target) == (200, b"hello world")
    assert seen.connections == 1


async def test_a_chunked_body_split_in_odd_places_arrives_whole(http: UpstreamHttp) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nworld again\r\n0\r\nx-trailer: 1\r\n\r\n"
    splits = [0, 3, 10, 47, 48, 50, 51, 52, 55, 56, 58, 61, 70, 71, 80, 85, 86, 90, len(chunked)]

    async def handler(peer: Peer) -> None:
        for _ in range(2):
            await peer.request()
            await peer.write(*[chunked[a:b] for a, b in itertools.pairwise(splits) if b > a])

    async with upstream(handler) as (target, seen):
        assert await fetch(http, target) == (200, b"hello world again")
        assert await fetch(http, target) == (200, b"hello world again")
    assert seen.connections == 1  # the trailer was read: the connection is reusable


async def test_a_body_without_length_ends_when_the_upstream_closes(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil", b" the end")
        peer.writer.close()

    async with upstream(handler) as (target, seen):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        assert b"".join(await body_of(answer)) == b"until the end"
        answer.release()
        assert await fetch(http, target) == (200, b"until the end")
    assert seen.connections == 2


async def test_a_body_until_close_cut_by_a_reset_is_broken_not_complete(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"partial"')
        # RST (linger 0): the body did not end, the connection broke.
        peer.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.writer.transport.abort()

    async with upstream(handler) as (target, _):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        with pytest.raises(BrokenAnswer):
            await answer.read(1000)
        answer.close()


async def test_a_body_in_another_coding_than_chunked_runs_until_the_close(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n\r\nraw", b" bytes")
        peer.writer.close()

    async with upstream(handler) as (target, _):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        assert await answer.read(1000) == b"raw bytes"  # RFC 9112 §6.3: not chunked, so until the close
        answer.release()


async def test_a_204_has_no_body_and_keeps_the_connection(http: UpstreamHttp) -> None:
    async with upstream(always(b"HTTP/1.1 204 No Content\r\n\r\n")) as (target, seen):
        assert await fetch(http, target) == (204, b"")
        assert await fetch(http, target) == (204, b"")
    assert seen.connections == 1


async def test_interim_answers_come_before_the_real_one(http: UpstreamHttp) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\ncontent-type: text/x\r\n\r\n"
    real = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    async def handler(peer: Peer) -> None:
        for _ in range(2):
            await peer.request()
            await peer.write(interim[:20], interim[20:], real)

    async with upstream(handler) as (target, seen):
        for _ in range(2):
            answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
            assert (answer.status, answer.content_type, answer.content_length) == (201, b"application/json", 2)
            assert [name for name, _ in answer.headers] == [b"content-type", b"content-length"]
            assert await answer.read(100) == b"{}"
            answer.release()
    assert seen.connections == 1


# Bounds on what an upstream can make the client hold ------------------------------------------


def endless(head: bytes, piece: bytes) -> Handler:
    """Sends `head`, then `piece` again and again: the upstream never stops on its own."""

    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.writer.write(head)
        with contextlib.suppress(ConnectionError):
            for _ in range(64 * 1024 * 1024 // len(piece)):  # 64 MB: far more than any bound
                peer.writer.write(piece)
                await peer.writer.drain()
            raise AssertionError("the client read 64 MB without closing the connection")

    return handler


@pytest.mark.parametrize(
    "head, piece",
    [
        (b"HTTP/1.1 200 OK\r\nx-huge: ", b"a" * 4096),  # one header without end
        (b"HTTP/1.1 200 OK\r\n", b"x-many: 1\r\n" * 8),  # many small headers, dripped
        (b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 8),  # interim answers without end
    ],
    ids=["one huge header", "many headers", "interim answers"],
)
async def test_a_head_larger_than_max_head_bytes_is_refused(http: UpstreamHttp, head: bytes, piece: bytes) -> None:
    async with upstream(endless(head, piece)) as (target, seen):
        with pytest.raises(BrokenAnswer, match=f"sent a head larger than {MAX_HEAD_BYTES} bytes"):
            await http.request(target, b"GET", [], b"", **TIMEOUTS)
        await seen.until(lambda: seen.disconnects == 1)  # closed long before 64 MB


@pytest.mark.parametrize(
    "piece",
    [b"0;" + b"e" * 4096, b"0\r\n" + b"x-trailer: 1\r\n" * 8],
    ids=["chunk extension", "trailers"],
)
async def test_endless_bytes_after_the_last_chunk_are_refused(http: UpstreamHttp, piece: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbody\r\n"
    first, rest = piece.split(b"\r\n", 1) if piece.startswith(b"0\r\n") else (piece, b"")
    start = first + b"\r\n" if rest else first
    async with upstream(endless(head + start, rest or b"e" * 4096)) as (target, seen):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        assert await answer.next_chunk() == b"body"
        with pytest.raises(BrokenAnswer, match="chunk framing or trailers larger than"):
            await body_of(answer)
        await seen.until(lambda: seen.disconnects == 1)


# Answers out of turn ------------------------------------------------------------------------------


async def test_a_second_answer_to_one_request_spoils_the_connection(http: UpstreamHttp) -> None:
    async with upstream(always(OK + OK)) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        await seen.until(lambda: seen.disconnects == 1)
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 2


async def test_a_second_answer_begun_with_the_end_of_the_first_spoils_the_connection(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.write(OK[:-1], OK[-1:] + b"HTTP/1.1 200 OK\r\n", b"content-length: 2\r\n\r\nok")
        await answering(OK)(peer)

    async with upstream(handler) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        await seen.until(lambda: seen.disconnects == 1)
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 2


async def test_bytes_after_a_whole_answer_still_held_are_not_read_on(http: UpstreamHttp) -> None:
    async def flooding(peer: Peer) -> None:
        await peer.request()
        await peer.write(OK, b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):  # endless header lines of a second answer (a few MB if all were kept)
            await peer.write(b"x-flood: " + b"a" * 16_000 + b"\r\n")

    async with upstream(flooding) as (target, seen):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        await seen.until(lambda: seen.disconnects == 1)  # closed while the caller still holds the answer
        assert answer.status == 200 and await answer.read(100) == b"ok"
        answer.release()


async def test_bytes_from_an_idle_connection_spoil_it(http: UpstreamHttp) -> None:
    async def speaking_out_of_turn(peer: Peer) -> None:
        await peer.request()
        await peer.write(OK)
        await asyncio.sleep(0.05)  # the client has put the connection in the pool
        await peer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno")
        await answering(OK)(peer)

    async with upstream(speaking_out_of_turn) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        await seen.until(lambda: seen.disconnects == 1)
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 2
    assert len(seen.requests) == 2


# Timeouts -----------------------------------------------------------------------------------------


async def silent(peer: Peer) -> None:
    await peer.request()  # and no answer, until the client closes the connection


async def test_a_silent_upstream_times_out_before_the_head(http: UpstreamHttp) -> None:
    async with upstream(silent) as (target, seen):
        with pytest.raises(ReadTimeout, match=r"did not answer in time \(read timeout\)"):
            await http.request(target, b"GET", [], b"", connect_timeout=WAIT, read_timeout=0.1)
        await seen.until(lambda: seen.disconnects == 1)


async def test_a_head_sent_a_byte_at_a_time_must_still_arrive_within_the_read_timeout(http: UpstreamHttp) -> None:
    async def drip(peer: Peer) -> None:
        await peer.request()
        for byte in itertools.islice(itertools.cycle(b"HTTP/1.1 200 OK\r\nx-drip: " + b"a" * 1000), 2000):
            await peer.write(bytes([byte]))
            await asyncio.sleep(0.01)  # never silent for a read timeout's length

    async with upstream(drip) as (target, seen):
        started = asyncio.get_running_loop().time()
        with pytest.raises(ReadTimeout, match=r"did not answer in time \(read timeout\)"):
            await http.request(target, b"GET", [], b"", connect_timeout=WAIT, read_timeout=0.3)
        assert asyncio.get_running_loop().time() - started < 1.0  # not one read timeout per byte
        await seen.until(lambda: seen.disconnects == 1)


async def test_a_stream_that_goes_silent_times_out_between_chunks(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"6\r\nevent\n\r\n")

    async with upstream(handler) as (target, seen):
        answer = await http.request(target, b"GET", [], b"", connect_timeout=WAIT, read_timeout=0.1)
        assert await answer.next_chunk() == b"event\n"
        with pytest.raises(ReadTimeout, match=r"stopped sending its answer \(read timeout\)"):
            await answer.next_chunk()
        answer.release()  # not read to the end: closed
        await seen.until(lambda: seen.disconnects == 1)


@contextlib.contextmanager
def full_backlog() -> Iterator[Target]:
    """A loopback port whose listen queue is full: connecting there waits without an answer."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(4):  # Linux queues backlog + 1 connections, then drops the SYNs
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        yield Target.of(f"http://127.0.0.1:{address[1]}/mcp")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connection_not_accepted_in_time_is_a_connect_timeout(http: UpstreamHttp) -> None:
    with full_backlog() as target, pytest.raises(ConnectTimeout, match=r"did not answer in time \(connect timeout\)"):
        await http.request(target, b"GET", [], b"", connect_timeout=0.1, read_timeout=WAIT)


# Failures -----------------------------------------------------------------------------------------


async def test_a_refused_connection_is_connect_failed(http: UpstreamHttp) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # a port nobody listens on while the test runs
        target = Target.of(f"http://127.0.0.1:{unused.getsockname()[1]}/mcp")
        with pytest.raises(ConnectFailed, match=r"^is unreachable \(connection refused or failed\)$"):
            await http.request(target, b"GET", [], b"", **TIMEOUTS)


@pytest.mark.parametrize(
    "garbage, problem",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "answered something that is not HTTP"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "answered something that is not HTTP"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab", "answered something that is not HTTP"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n", "not HTTP"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "answered something that is not HTTP"),
        (b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n", "switched protocols"),
    ],
    ids=["not http", "negative length", "two lengths", "length and chunked", "bad header", "upgrade"],
)
async def test_garbage_is_a_broken_answer(http: UpstreamHttp, garbage: bytes, problem: str) -> None:
    async with upstream(always(garbage)) as (target, seen):
        with pytest.raises(BrokenAnswer, match=problem):
            await http.request(target, b"GET", [], b"", **TIMEOUTS)
        await seen.until(lambda: seen.disconnects == 1)


async def test_a_close_mid_body_breaks_the_answer_after_what_arrived(http: UpstreamHttp) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome", b" of it")
        peer.writer.close()

    async with upstream(handler) as (target, _):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        received = b""
        with pytest.raises(BrokenAnswer, match="closed the connection"):
            for _ in range(10):
                chunk = await answer.next_chunk()
                assert chunk is not None
                received += chunk
        assert received == b"some of it"
        answer.release()


# Retries ------------------------------------------------------------------------------------------


async def closing_at_the_second_request(peer: Peer) -> None:
    """Answers one request, then closes the connection when the next arrives, as a server does
    whose idle timeout ends just as the client sends."""
    await peer.request()
    await peer.write(OK)
    await peer.request()
    peer.writer.close()


async def test_a_get_on_a_connection_closed_while_idle_is_sent_again_once(http: UpstreamHttp) -> None:
    async with upstream(closing_at_the_second_request) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        assert await fetch(http, target, b"DELETE") == (200, b"ok")
    assert seen.connections == 2
    assert [request.split(b" ", 1)[0] for request in seen.requests] == [b"GET", b"DELETE", b"DELETE"]


async def test_a_get_is_sent_again_only_once_and_on_a_new_connection(http: UpstreamHttp) -> None:
    async with upstream(closing_at_the_second_request) as (target, seen):
        both = [await http.request(target, b"GET", [], b"", **TIMEOUTS) for _ in range(2)]
        for answer in both:  # two connections in the pool, each closing at its next request
            assert await answer.read(10) == b"ok"
            answer.release()
        assert await fetch(http, target) == (200, b"ok")
    assert seen.connections == 3
    assert len(seen.requests) == 4  # two, then the third request twice: not once per pooled connection


async def test_a_post_on_a_connection_closed_while_idle_is_not_sent_again(http: UpstreamHttp) -> None:
    async with upstream(closing_at_the_second_request) as (target, seen):
        assert await fetch(http, target) == (200, b"ok")
        with pytest.raises(BrokenAnswer, match="closed the connection"):
            await fetch(http, target, b"POST", b"{}")
    assert seen.connections == 1
    assert [request.split(b" ", 1)[0] for request in seen.requests] == [b"GET", b"POST"]


async def test_a_connection_idle_too_long_is_not_reused() -> None:
    http = UpstreamHttp(idle_seconds=0.05)
    try:
        async with upstream(always(OK)) as (target, seen):
            assert await fetch(http, target) == (200, b"ok")
            await asyncio.sleep(0.1)  # the idle time is the loop's clock: nothing to inject
            assert await fetch(http, target) == (200, b"ok")
            await seen.until(lambda: seen.disconnects == 1)  # the stale one was closed
    finally:
        await http.aclose()
    assert seen.connections == 2


async def test_connections_unused_too_long_are_closed_when_another_is_put_back() -> None:
    http = UpstreamHttp(idle_seconds=0.05)
    try:
        async with upstream(always(OK)) as (target, seen):
            first, second = await asyncio.gather(
                http.request(target, b"GET", [], b"", **TIMEOUTS), http.request(target, b"GET", [], b"", **TIMEOUTS)
            )
            for answer in (first, second):
                assert await answer.read(100) == b"ok"
            first.release()  # pooled
            await asyncio.sleep(0.1)  # first is now unused too long
            second.release()  # pooled, and the stale one closed without waiting for a request
            await seen.until(lambda: seen.disconnects == 1)
    finally:
        await http.aclose()


# Flow control -------------------------------------------------------------------------------------


async def until_stalled(progress: Callable[[], int]) -> None:
    """Until the upstream can send no more: no progress for 50 ms (it takes the client under 1 ms
    to read what the kernel holds)."""
    still = 0
    for _ in range(500):
        before = progress()
        await asyncio.sleep(0.01)
        still = still + 1 if progress() == before else 0
        if still == 5:
            return
    raise AssertionError("the upstream never stopped sending")


async def test_a_consumer_that_does_not_read_pauses_the_upstream(http: UpstreamHttp) -> None:
    size = 64 * 1024 * 1024
    sent = 0

    async def handler(peer: Peer) -> None:
        nonlocal sent
        await peer.request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        piece = b"x" * 65536
        for _ in range(size // len(piece)):
            peer.writer.write(piece)
            await peer.writer.drain()
            sent += len(piece)

    async with upstream(handler) as (target, _):
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        await until_stalled(lambda: sent)
        # The kernel's socket buffers (about 4 MB here), BUFFER_BYTES and one read in the client;
        # without the pause, the client would take in all 64 MB.
        assert sent < 16 * 1024 * 1024, sent
        assert len(await answer.read(size)) == size  # reading resumes the upstream
        answer.release()


async def test_tiny_chunks_do_not_multiply_what_a_paused_answer_holds(http: UpstreamHttp) -> None:
    pieces = 0

    async def handler(peer: Peer) -> None:
        nonlocal pieces
        await peer.request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        piece = b"2\r\nab\r\n" * 10_000  # two bytes of body in each chunk, and a Python object
        for _ in range(400):  # 24 MB
            peer.writer.write(piece)
            await peer.writer.drain()
            pieces += 1

    tracemalloc.start()
    try:
        async with upstream(handler) as (target, _):
            before = tracemalloc.get_traced_memory()[0]
            answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
            await until_stalled(lambda: pieces)
            held = tracemalloc.get_traced_memory()[0] - before
            answer.close()
    finally:
        tracemalloc.stop()
    assert pieces < 400
    # BUFFER_BYTES counts what each piece costs to hold, not only its 2 bytes: the client holds
    # under 1 MB (most of it one read of the socket, parsed before reading pauses), not the
    # 128 Ki pieces (7 MB) of 2 bytes each that make BUFFER_BYTES of body.
    assert held < 8 * BUFFER_BYTES, held


# Requests that must not leave ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        (b"x-a", b"1\r\nx-injected: 1"),
        (b"x-a", b"1\nx-injected: 1"),
        (b"x-a", b"1\rx-injected: 1"),
        (b"x-a", b"1\0"),
        (b"x-a\r\nx-injected", b"1"),
        (b"x-a\0", b"1"),
    ],
)
async def test_a_header_with_cr_lf_or_nul_is_refused_before_sending(http: UpstreamHttp, header: tuple[bytes, bytes]) -> None:
    async with upstream(always(OK)) as (target, seen):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            await http.request(target, b"GET", [(b"x-fine", b"1"), header], b"", **TIMEOUTS)
        assert await fetch(http, target) == (200, b"ok")
    assert len(seen.requests) == 1


# The pool's limit ---------------------------------------------------------------------------------


async def test_with_one_connection_a_second_request_waits_for_the_first() -> None:
    http = UpstreamHttp(max_connections=1)
    try:
        async with upstream(always(OK)) as (target, seen):
            first = await http.request(target, b"GET", [], b"", **TIMEOUTS)
            second = asyncio.create_task(fetch(http, target))
            await asyncio.sleep(0.05)
            assert not second.done()
            assert await first.read(10) == b"ok"
            first.release()
            assert await second == (200, b"ok")
        assert seen.connections == 1
    finally:
        await http.aclose()


async def test_with_one_connection_a_second_request_to_another_upstream_waits_for_the_first() -> None:
    http = UpstreamHttp(max_connections=1)
    try:
        async with upstream(always(OK)) as (one, seen_one), upstream(always(OK)) as (other, seen_other):
            first = await http.request(one, b"GET", [], b"", **TIMEOUTS)
            second = asyncio.create_task(fetch(http, other))
            await asyncio.sleep(0.05)
            assert not second.done()
            assert await first.read(10) == b"ok"
            first.release()  # idle in the pool, where it makes room for the other upstream
            assert await second == (200, b"ok")
            await seen_one.until(lambda: seen_one.disconnects == 1)
        assert (seen_one.connections, seen_other.connections) == (1, 1)
    finally:
        await http.aclose()


async def test_with_one_connection_a_second_request_times_out_if_the_first_holds_it() -> None:
    http = UpstreamHttp(max_connections=1)
    try:
        async with upstream(always(OK)) as (target, seen):
            first = await http.request(target, b"GET", [], b"", **TIMEOUTS)
            with pytest.raises(ConnectTimeout, match=r"all 1 upstream connections busy"):
                await http.request(target, b"GET", [], b"", connect_timeout=0.1, read_timeout=WAIT)
            first.close()
            assert await fetch(http, target) == (200, b"ok")
        assert seen.connections == 2
    finally:
        await http.aclose()


async def test_requests_that_gave_up_waiting_leave_the_line() -> None:
    http = UpstreamHttp(max_connections=1)
    try:
        async with upstream(always(OK)) as (target, _):
            first = await http.request(target, b"GET", [], b"", **TIMEOUTS)
            for _ in range(5):
                with pytest.raises(ConnectTimeout):
                    await http.request(target, b"GET", [], b"", connect_timeout=0.01, read_timeout=WAIT)
            assert len(http._room_waiters) == 0  # a saturated pool's line does not grow with them
            first.close()
    finally:
        await http.aclose()


async def test_a_connection_given_up_is_let_go_at_once_even_with_a_body_the_upstream_never_read(
    http: UpstreamHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = asyncio.Event()
    original = _Connection.connection_lost

    def noting(self: _Connection, exc: Exception | None) -> None:
        lost.set()
        original(self, exc)

    monkeypatch.setattr(_Connection, "connection_lost", noting)

    async def reads_nothing(peer: Peer) -> None:
        await asyncio.sleep(30)  # neither reads the request nor closes (stopped with the server)

    async with upstream(reads_nothing) as (target, _):
        with pytest.raises(ReadTimeout):  # 8 MB stays in the client's buffers: close() would wait for it
            await http.request(target, b"POST", [], b"x" * 8_000_000, connect_timeout=WAIT, read_timeout=0.2)
        async with asyncio.timeout(WAIT):
            await lost.wait()  # the socket is gone, not waiting for the upstream to read


async def test_with_one_connection_a_failed_connect_frees_its_place() -> None:
    http = UpstreamHttp(max_connections=1)
    try:
        async with upstream(always(OK)) as (target, _):
            with full_backlog() as stuck:
                first = asyncio.create_task(http.request(stuck, b"GET", [], b"", connect_timeout=0.1, read_timeout=WAIT))
                await asyncio.sleep(0)  # the first is connecting, the second waits for its place
                second = asyncio.create_task(fetch(http, target))
                with pytest.raises(ConnectTimeout, match="connect timeout"):
                    await first
                async with asyncio.timeout(WAIT / 2):  # not the second's own connect timeout
                    assert await second == (200, b"ok")
    finally:
        await http.aclose()


# Cancellation -------------------------------------------------------------------------------------


async def test_a_request_cancelled_before_the_head_closes_its_connection(http: UpstreamHttp) -> None:
    async with upstream(silent) as (target, seen):
        task = asyncio.create_task(http.request(target, b"GET", [], b"", **TIMEOUTS))
        await seen.until(lambda: len(seen.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await seen.until(lambda: seen.disconnects == 1)


async def test_a_request_cancelled_while_reading_the_body_closes_its_connection() -> None:
    http = UpstreamHttp(max_connections=1)
    handler = first_then(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nsome", OK)

    async def read_it() -> None:
        answer = await http.request(target, b"GET", [], b"", **TIMEOUTS)
        await answer.read(100)  # neither released nor closed: the cancellation must close it

    try:
        async with upstream(handler) as (target, seen):
            task = asyncio.create_task(read_it())
            await seen.until(lambda: len(seen.requests) == 1)
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await seen.until(lambda: seen.disconnects == 1)
            assert await fetch(http, target) == (200, b"ok")  # the one place in the pool is free
        assert seen.connections == 2
    finally:
        await http.aclose()


# TLS ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return private_authority(tmp_path_factory.mktemp("tls"))


async def test_an_https_upstream_signed_by_a_trusted_ca_is_reached(
    certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    http = UpstreamHttp()
    try:
        async with upstream(always(OK), tls=certificates.server_context()) as (target, seen):
            assert await fetch(http, target) == (200, b"ok")
            assert await fetch(http, target) == (200, b"ok")
        assert seen.connections == 1
    finally:
        await http.aclose()


async def test_an_https_upstream_that_never_shakes_hands_is_a_connect_timeout(http: UpstreamHttp) -> None:
    async with upstream(silent) as (plain, seen):
        target = Target.of(f"https://127.0.0.1:{plain.port}/mcp")  # TCP accepted, TLS never answered
        with pytest.raises(ConnectTimeout, match=r"did not answer in time \(connect timeout\)"):
            await http.request(target, b"GET", [], b"", connect_timeout=0.1, read_timeout=WAIT)
        await seen.until(lambda: seen.disconnects == 1)
    assert seen.requests == []


async def test_an_https_upstream_signed_by_an_unknown_ca_is_refused(
    certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    http = UpstreamHttp()
    try:
        async with upstream(always(OK), tls=certificates.server_context()) as (target, seen):
            with pytest.raises(ConnectFailed, match=r"failed the TLS handshake \(CERTIFICATE_VERIFY_FAILED\)"):
                await http.request(target, b"GET", [], b"", **TIMEOUTS)
        assert seen.requests == []
    finally:
        await http.aclose()
