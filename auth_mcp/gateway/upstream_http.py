"""The HTTP/1.1 client the gateway reaches upstreams with.

Written here, on asyncio's Protocol and httptools' response parser (the llhttp binding uvicorn
serves with), because the libraries cost more than the rest of a forwarded call: per call, httpx
took about 1.4 ms of CPU and aiohttp 0.4-0.8 ms, more than the Python SDK upstream spends on the
whole tool call (bench/gateway.py), which kept the gateway from keeping pace with its upstream.
It does what the gateway needs and nothing else:
- HTTP/1.1 over TCP or TLS (the system's trust store or an upstream's own CA file, the host name
  verified), keep-alive connections pooled per origin, most recently used first, at most
  `max_connections` open in all (a request waits for a free one within its connect timeout);
- a pooled connection is used again only after its answer was read to the end with keep-alive,
  and dropped when unused for IDLE_SECONDS (below the 5 s after which common servers close idle
  connections) or when the upstream closes it; a GET or DELETE whose reused connection the
  upstream closed before answering is sent once more on a new one (never a POST: it may have run);
- the request body whole with Content-Length (the gateway has read it already, bounded); the
  answer streamed as it arrives (Content-Length, chunked, or until the connection closes), with
  flow control: reading pauses while BUFFER_BYTES wait for the consumer (counting what each piece
  costs to hold, so that an upstream's tiny chunks cannot make it many times that);
- a connect timeout, and a read timeout: the whole head must arrive within it, and after the head
  it is the longest silence allowed between chunks; the head is bounded (MAX_HEAD_BYTES), and so is what arrives
  between two pieces of body (chunk-size lines, trailers);
- no proxies or netrc from the environment, no cookies, no redirects, no decompression, no header
  of its own but Host and Content-Length; a header carrying CR, LF or NUL is refused, never sent;
- a request cancelled (the client went away, the server stops) closes its connection.
Every failure is an `UpstreamError` whose message says what happened, for the proxy's 502/504.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from dataclasses import dataclass
from operator import itemgetter
from urllib.parse import urlsplit

import httptools

MAX_CONNECTIONS = 1000
IDLE_SECONDS = 4.0
MAX_HEAD_BYTES = 64 * 1024
BUFFER_BYTES = 256 * 1024
_PIECE_BYTES = 64  # what holding a piece of body costs beyond its bytes (a bytes object, a deque slot)
_NAME, _VALUE = itemgetter(0), itemgetter(1)
_RETRYABLE = frozenset({b"GET", b"DELETE"})  # idempotent (RFC 9110 §9.2.2): safe to send again


class UpstreamError(Exception):
    """The upstream gave no usable answer; the message completes "upstream 'x' ..."."""


class ConnectFailed(UpstreamError):
    pass


class TlsRefused(ConnectFailed):
    """The TLS handshake failed: an untrusted or wrong certificate, or no TLS at all."""


class ConnectTimeout(UpstreamError):
    pass


class ReadTimeout(UpstreamError):
    pass


class BrokenAnswer(UpstreamError):
    """Not HTTP, a head too large, or a connection closed before the end of the answer."""


@dataclass(frozen=True)
class Target:
    """Where a request goes, parsed once per upstream."""

    scheme: str
    host: str
    port: int
    origin: tuple[str, str, int, str]  # connections are pooled by it (the last part: which CA file)
    host_header: bytes
    path: bytes
    tls: ssl.SSLContext | None = None  # for https: whom to trust, if not the system's store

    @classmethod
    def of(cls, url: str, *, ca_file: str | None = None) -> Target:
        """`ca_file`: PEM certificates an https upstream's certificate must chain to, instead of
        the system's trust store (a private CA, e.g. GitHub Enterprise Server's)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # RFC 9112 §3.2: Host is the authority without userinfo; an IPv6 literal keeps its brackets.
        authority = parts.netloc.rpartition("@")[2]
        tls = ssl.create_default_context(cafile=ca_file) if ca_file is not None else None
        return cls(
            parts.scheme,
            parts.hostname,
            port,
            (parts.scheme, parts.hostname, port, ca_file or ""),
            authority.encode("idna"),
            path.encode("ascii"),
            tls,
        )


def encode_request(target: Target, method: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The request's bytes; ValueError for a header that would break the framing."""
    lines = b"\r\n".join(map(b": ".join, headers)) + b"\r\n" if headers else b""  # in C, no Python per header
    # Each header adds exactly one CR and one LF: any other would start a header or a request of its own.
    if lines.count(b"\n") != len(headers) or lines.count(b"\r") != len(headers) or b"\0" in lines:
        raise ValueError("a header holds CR, LF or NUL")
    length = b"content-length: %d\r\n" % len(body) if body or method == b"POST" else b""
    return b"%s %s HTTP/1.1\r\nhost: %s\r\n%s%s\r\n%s" % (method, target.path, target.host_header, lines, length, body)


class Answer:
    """The upstream's answer: status and head at once, the body as it arrives."""

    # What an answer starts with (class attributes: one made per forwarded call sets only its own).
    status = 0
    content_type = b""  # the media type, lower case, without parameters
    content_length: int | None = None
    session_id: bytes | None = None  # Mcp-Session-Id
    has_head = False
    complete = False
    close_delimited = False
    received = False  # any byte of it at all
    keep_alive = False
    _buffered = 0
    _error: UpstreamError | None = None
    _waiter: asyncio.Future[None] | None = None
    _done = False  # released or closed

    def __init__(self, connection: _Connection, read_timeout: float) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self.headers: list[tuple[bytes, bytes]] = []  # as received (names in the upstream's case)
        self._chunks: collections.deque[bytes] = collections.deque()

    async def next_chunk(self) -> bytes | None:
        """The body bytes that have arrived (waiting for some), or None at the end."""
        while True:
            if self._chunks:
                chunks = self._chunks
                chunk = chunks.popleft() if len(chunks) == 1 else b"".join([chunks.popleft() for _ in range(len(chunks))])
                self._buffered = 0
                self._connection.resume()
                return chunk
            if self._error is not None:
                raise self._error
            if self.complete:
                return None
            await self._wait()

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or None once it passes `limit` bytes."""
        if self.content_length is not None and self.content_length > limit:
            return None
        parts: list[bytes] = []
        size = 0
        while (chunk := await self.next_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Done with it: the connection goes back to the pool if the answer was read to the end."""
        if not self._done:
            self._done = True
            self._connection.finished(reusable=self.complete and self.keep_alive and not self._chunks)

    def close(self) -> None:
        """Done with it before the end (or after): the connection is closed unless released."""
        if not self._done:
            self._done = True
            self._connection.finished(reusable=False)

    async def _head(self) -> None:
        # The whole head within the read timeout: an upstream sending it a byte at a time does not
        # get the read timeout per byte.
        deadline = self._connection.loop.time() + self._read_timeout
        while not self.has_head:
            if self._error is not None:
                raise self._error
            await self._wait(deadline)

    async def _wait(self, deadline: float | None = None) -> None:
        loop = self._connection.loop
        waiter = self._waiter = loop.create_future()
        if deadline is None:
            timer = loop.call_later(self._read_timeout, self._timed_out, waiter)
        else:
            timer = loop.call_at(deadline, self._timed_out, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            self.close()  # a request cancelled while its answer arrives closes its connection
            raise
        finally:
            timer.cancel()
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            what = "stopped sending its answer" if self.has_head else "did not answer in time"
            waiter.set_exception(ReadTimeout(f"{what} (read timeout)"))

    # Called by the connection ----------------------------------------------------------------------

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body) + _PIECE_BYTES  # tiny chunks cost far more than their bytes
        if self._buffered > BUFFER_BYTES:
            self._connection.pause()

    def fail(self, error: UpstreamError) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self.wake()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the protocol asyncio feeds, and the parser's callbacks."""

    def __init__(self, pool: UpstreamHttp, origin: tuple[str, str, int, str]) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None  # the answer being received
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._spoiled = False  # the upstream sent more than one answer: never used again
        self._paused = False
        self._unparsed = 0  # bytes since the head began or since the last piece of body
        self._head: list[tuple[bytes, bytes]] = []  # where on_header puts what it gets

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, answer: Answer, payload: bytes) -> None:
        self.answer = answer
        self._head = answer.headers
        self._unparsed = 0
        assert self.transport is not None
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None or answer.complete:
            # Nothing asked, or the answer is whole: an upstream speaking out of turn is not read
            # on (nothing it sends now is kept) and gets no next request.
            self._spoiled = True
            self.close()
            return
        answer.received = True
        self._unparsed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            answer.fail(BrokenAnswer("switched protocols, which the gateway does not forward"))
            self.close()
        except httptools.HttpParserError:
            answer.fail(BrokenAnswer("answered something that is not HTTP"))
            self.close()
        else:
            if self._unparsed > MAX_HEAD_BYTES and not answer.complete:
                what = "a head" if not answer.has_head else "chunk framing or trailers"
                answer.fail(BrokenAnswer(f"sent {what} larger than {MAX_HEAD_BYTES} bytes"))
                self.close()
        answer.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        answer = self.answer
        if answer is not None and not answer.complete:
            if answer.has_head and answer.close_delimited and exc is None:  # a reset cuts it short
                answer.complete = True  # RFC 9112 §6.3: such a body ends when the connection does
            else:
                answer.fail(BrokenAnswer("closed the connection or answered something that is not HTTP"))
            answer.wake()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def finished(self, *, reusable: bool) -> None:
        self.answer = None
        if reusable and not self._spoiled and not self.closed:
            self.pool.keep(self)
        else:
            self.close()

    def close(self) -> None:
        # Out of the pool and its count at once, not when asyncio reports the connection lost: a
        # connection being closed is never used again, and its room is free for a new one.
        # Aborted, not closed: close() would wait, without end, for an upstream that reads nothing
        # to take what is still buffered (a request body of up to max_request_bytes), holding the
        # socket and the bytes outside the pool's count. Nothing more is owed to such a connection.
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    # httptools callbacks (only those defined are called) -------------------------------------------

    def on_message_begin(self) -> None:
        answer = self.answer
        if answer is None or answer.complete:
            self._spoiled = True

    def on_header(self, name: bytes, value: bytes) -> None:
        # Into the answer's headers while its head arrives; trailers and whatever follows a
        # complete answer into a list nobody reads (bounded by _unparsed, dropped at the next send).
        self._head.append((name, value))

    def on_headers_complete(self) -> None:
        answer = self.answer
        if answer is None or answer.complete:
            return
        status = self.parser.get_status_code()
        headers = answer.headers
        if status < 200:  # 1xx (100 Continue, 103 Early Hints): the real answer follows
            headers.clear()
            return
        self._head = []
        # The head's names in lower case, the first of a repeated one winning: made in C.
        named = dict(zip(map(bytes.lower, map(_NAME, reversed(headers))), map(_VALUE, reversed(headers)), strict=True))
        content_type = named.get(b"content-type")
        if content_type is not None:
            answer.content_type = content_type.split(b";", 1)[0].strip().lower()
        length = named.get(b"content-length")
        answer.content_length = int(length) if length is not None and length.isdigit() else None
        answer.session_id = named.get(b"mcp-session-id")
        answer.status = status
        answer.has_head = True
        # RFC 9112 §6.3: chunked framing only when chunked is the last coding; else until the close.
        codings = named.get(b"transfer-encoding", b"")
        chunked = codings.rpartition(b",")[2].strip().lower() == b"chunked"
        answer.close_delimited = answer.content_length is None and not chunked
        self._unparsed = 0

    def on_body(self, body: bytes) -> None:
        answer = self.answer
        if answer is not None and answer.has_head and not answer.complete:
            answer.push(body)
            self._unparsed = 0

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is None or not answer.has_head or answer.complete:
            return  # an interim (1xx) answer ends here, or one the upstream should not have sent
        answer.complete = True
        answer.keep_alive = self.parser.should_keep_alive()


class UpstreamHttp:
    """The pool of upstream connections, and requests over them."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS, idle_seconds: float = IDLE_SECONDS) -> None:
        self._max = max_connections
        self._idle_seconds = idle_seconds
        self._idle: dict[tuple[str, str, int, str], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._opening = 0
        self._room_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def request(
        self,
        target: Target,
        method: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Answer:
        """Send the request; the answer once its head has arrived. The caller ends it with
        `release()` or `close()`."""
        payload = encode_request(target, method, headers, body)
        fresh = False  # a new connection: never `reused`, so the request is sent at most twice
        while True:
            connection = (not fresh and self._reuse(target.origin)) or await self._acquire(target, connect_timeout, fresh=fresh)
            answer = Answer(connection, read_timeout)
            try:
                connection.send(answer, payload)
                await answer._head()
            except BrokenAnswer:
                answer.close()
                if connection.reused and not answer.received and method in _RETRYABLE:
                    fresh = True  # the upstream had closed it while idle; a new connection is tried once
                    continue
                raise
            except BaseException:
                answer.close()
                raise
            return answer

    async def _acquire(self, target: Target, seconds: float, *, fresh: bool) -> _Connection:
        """A pooled connection to the target's origin (unless `fresh`), else a new one once there is
        room: an idle connection (the least recently used) is closed to make it, or the request
        waits for one to be released or closed."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            if not fresh and (connection := self._reuse(target.origin)) is not None:
                return connection
            if len(self._open) + self._opening < self._max:
                return await self._connect(target, deadline)
            if not self._close_least_recently_used():
                await self._wait_for_room(deadline)

    def _reuse(self, origin: tuple[str, str, int, str]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_usable = self._now() - self._idle_seconds
        while idle:
            connection = idle.pop()
            usable = not connection.closed and connection.transport is not None and not connection.transport.is_closing()
            if usable and connection.idle_since >= oldest_usable:
                connection.reused = True
                return connection
            connection.close()
        return None

    async def _connect(self, target: Target, deadline: float) -> _Connection:
        self._opening += 1
        try:
            connection = await self._handshake(target, deadline)
        except BaseException:
            self._wake_one()  # the room it was to take goes to a request waiting for one
            raise
        finally:
            self._opening -= 1
        self._open.add(connection)
        return connection

    async def _handshake(self, target: Target, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(self, target.origin)
        tls = (target.tls or self._tls_context()) if target.scheme == "https" else None
        try:
            async with asyncio.timeout_at(deadline):
                await loop.create_connection(
                    lambda: connection, target.host, target.port, ssl=tls, server_hostname=target.host if tls else None
                )
        except TimeoutError:
            raise ConnectTimeout("did not answer in time (connect timeout)") from None
        except ssl.SSLError as exc:
            raise TlsRefused(f"failed the TLS handshake ({exc.reason or exc.__class__.__name__})") from None
        except OSError:
            raise ConnectFailed("is unreachable (connection refused or failed)") from None
        if connection.closed:  # refused after the handshake
            raise ConnectFailed("is unreachable (connection refused or failed)")
        return connection

    def _close_least_recently_used(self) -> bool:
        idle = [connection for connections in self._idle.values() for connection in connections]
        if not idle:
            return False
        min(idle, key=lambda connection: connection.idle_since).close()
        return True

    async def _wait_for_room(self, deadline: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._room_waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, then timed out or cancelled: the room goes to the next in line
            else:
                with contextlib.suppress(ValueError):
                    self._room_waiters.remove(waiter)  # the line does not keep those who left it
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout(f"did not answer in time (all {self._max} upstream connections busy)") from None
            raise

    def _wake_one(self) -> None:
        while self._room_waiters:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def keep(self, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        now = connection.idle_since = self._now()
        idle = self._idle.setdefault(connection.origin, [])
        while idle and idle[0].idle_since < now - self._idle_seconds:
            idle.pop(0).close()  # the oldest, unused too long
        idle.append(connection)
        self._wake_one()  # a request waiting for room may use it, or close it to make room

    def forget(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)
        if connection in self._open:
            self._open.discard(connection)
            self._wake_one()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()  # verifies certificate and host name
        return self._tls

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def aclose(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
