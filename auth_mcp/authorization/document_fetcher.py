"""Fetching a small document from a URL a stranger chose (a client metadata document, a client's
JWK Set), without opening a server-side request forgery hole or a queue others can fill.

Rules every fetch follows (draft-ietf-oauth-client-id-metadata-document §3, §6; RFC 9700 §4.8):
- the URL is https, with a host name (not an IP literal) that is plain ASCII and valid as DNS
  labels (RFC 1035 §2.3.4, RFC 5891 §4.2.3: each label 1-63 letters, digits or inner hyphens;
  names that fail this would fail IDNA encoding deeper down), no credentials, no fragment;
- the name is resolved here, every answer must be a public address (public_addresses.py), and
  the connection goes to exactly the checked address with TLS verified for the named host;
- no redirects, only 200, identity encoding, at most `max_bytes`.

Availability rules, because each fetch holds a socket and a resolver thread for up to seconds:
- one deadline covers everything a request waits for: a free slot, the resolver, the connection
  and the body. A request that cannot be served within it fails; it never queues behind others;
- at most `slots` fetches run at once and at most `max_waiting` requests wait for a slot; the
  next one is refused at once (busy: our load, not the document's fault, so not remembered);
- at most `per_address` fetches run at once to one address (an IPv6 /64 counts as one);
- failures are remembered for `failure_ttl` seconds, per host name and, for network failures,
  per address, so a silent host costs one slow attempt per interval, not one per request;
- names are resolved on a small pool of threads of our own: lookups that hang (the system
  resolver cannot be cancelled) never starve the event loop's default executor.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

import httpx

from auth_mcp.authorization.public_addresses import is_public_address
from auth_mcp.clock import Clock
from auth_mcp.http.rate_limit import address_bucket

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> IP addresses. Injected in tests; production uses `SystemResolver`."""

DEADLINE = 5.0
SLOTS = 4
MAX_WAITING = 16
PER_ADDRESS = 2
FAILURE_TTL = 60.0
MAX_REMEMBERED_FAILURES = 10_000
MAX_HOST_LENGTH = 253  # RFC 1035 §2.3.4
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class FetchRefused(Exception):
    """Why a document was not fetched, safe to show to the person and the client.

    `busy` means this server is at its fetch limits: the request may succeed if retried
    shortly (OAuth `temporarily_unavailable`). Otherwise the URL or its host is at fault.
    """

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    headers: httpx.Headers


def check_host_name(host: str) -> None:
    """Raise `FetchRefused` unless `host` is an ASCII DNS name we may look up."""
    if not host:
        raise FetchRefused("the URL has no host name")
    if not host.isascii() or any(ch.isspace() or ord(ch) < 0x21 for ch in host):
        # Internationalized names arrive as their A-label (xn--...) or not at all.
        raise FetchRefused("the URL's host name must be ASCII (an internationalized name in its xn-- form)")
    if _is_ip_literal(host):
        raise FetchRefused("the URL must name a host, not an IP address")
    if len(host) > MAX_HOST_LENGTH:
        raise FetchRefused(f"the URL's host name is longer than {MAX_HOST_LENGTH} characters")
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        # Empty labels (a..b, .a, a.), labels over 63 characters, or characters outside LDH.
        raise FetchRefused("the URL's host name is not a valid DNS name")


def check_public_url(url: str) -> SplitResult:
    """The parts of `url` if it may be fetched; raises `FetchRefused` saying why not."""
    if not url.isascii() or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise FetchRefused("the URL must be ASCII without spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise FetchRefused("the URL is malformed") from None
    if parts.scheme != "https":
        raise FetchRefused("the URL must use https")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("the URL must not contain credentials")
    if parts.fragment or url.endswith("#"):
        raise FetchRefused("the URL must not contain a fragment")
    check_host_name(parts.hostname or "")
    return parts


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


# getaddrinfo cannot be cancelled: a lookup abandoned at the deadline holds its thread until the
# system resolver gives up (commonly 2 attempts of 5 seconds). Four threads per slot keep a
# slot's next lookup from queueing behind its abandoned ones, which would blame the next host.
RESOLVER_THREADS = 4 * SLOTS


class SystemResolver:
    """getaddrinfo on threads of its own (see the module docstring)."""

    def __init__(self, *, threads: int = RESOLVER_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="document-dns")

    async def __call__(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(self._pool, _getaddrinfo, host, port)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _getaddrinfo(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class _Failures:
    """Recent failures by key, each remembered for a while (bounded, oldest forgotten first)."""

    def __init__(self, *, clock: Clock, ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        until, message = entry
        if until <= self._clock.now():
            del self._entries[key]
            return None
        return message

    def add(self, key: str, message: str) -> None:
        self._entries[key] = (self._clock.now() + self._ttl, message)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_REMEMBERED_FAILURES:
            self._entries.popitem(last=False)


class PublicDocumentFetcher:
    """Fetches small documents from public https URLs under the rules of the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        deadline: float = DEADLINE,
        slots: int = SLOTS,
        max_waiting: int = MAX_WAITING,
        per_address: int = PER_ADDRESS,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.deadline = deadline
        self._own_resolver = SystemResolver() if resolver is None else None
        self._resolver: Resolver = resolver or self._own_resolver  # type: ignore[assignment]
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=deadline, trust_env=False)
        self._slots = asyncio.Semaphore(slots)
        self._max_waiting = max_waiting
        self._waiting = 0
        self._per_address = per_address
        self._active: dict[str, int] = {}
        self._failures = _Failures(clock=clock, ttl=failure_ttl)

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._own_resolver is not None:
            self._own_resolver.close()

    async def fetch(self, url: str, *, max_bytes: int, what: str = "the document", deadline_at: float | None = None) -> Fetched:
        """The body and headers of `url`; raises `FetchRefused` saying what went wrong.

        `deadline_at` (event-loop time) ends the wait earlier when the caller already waited
        for something else under the same deadline; by default it is `deadline` from now.
        """
        parts = check_public_url(url)
        host = parts.hostname or ""
        remembered = self._failures.get("host:" + host)
        if remembered is not None:
            raise FetchRefused(f"{remembered} (a recent attempt; not retried yet)")
        if self._slots.locked() and self._waiting >= self._max_waiting:
            raise FetchRefused(f"too many documents are being fetched right now; {what} was not fetched", busy=True)
        if deadline_at is None:
            deadline_at = asyncio.get_running_loop().time() + self.deadline
        fetching = False
        contacted: list[str] = []  # the address being fetched from, once there is one
        try:
            async with asyncio.timeout_at(deadline_at):
                async with self._slot():
                    fetching = True
                    return await self._fetch(parts, max_bytes=max_bytes, what=what, contacted=contacted)
        except TimeoutError:
            if not fetching:  # no slot came free in time: our load, not the host's fault
                raise FetchRefused(f"too many documents are being fetched right now; {what} was not fetched", busy=True) from None
            message = f"{what} could not be fetched from {host} within {self.deadline:g} seconds"
            self._failures.add("host:" + host, message)
            for key in contacted:
                self._failures.add("address:" + key, message)
            raise FetchRefused(message) from None

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the slots, waited for under the caller's deadline and counted while waited for."""
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    async def _fetch(self, parts: SplitResult, *, max_bytes: int, what: str, contacted: list[str]) -> Fetched:
        host = parts.hostname or ""
        port = parts.port or 443
        addresses = await self._resolve(host, port)
        address = addresses[0]
        key = address_bucket(address)
        if self._active.get(key, 0) >= self._per_address:
            raise FetchRefused(f"too many fetches to {host}'s address are in progress; {what} was not fetched", busy=True)
        self._active[key] = self._active.get(key, 0) + 1
        contacted.append(key)
        try:
            return await self._get(parts, address, max_bytes=max_bytes, what=what)
        finally:
            self._active[key] -= 1
            if not self._active[key]:
                del self._active[key]

    async def _resolve(self, host: str, port: int) -> list[str]:
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError, ValueError):
            addresses = []
        if not addresses:
            self._refuse_host(host, f"the host {host} does not resolve")
        if not all(is_public_address(address) for address in addresses):
            # Any non-public answer is refused outright: a name that also resolves inward is a probe.
            self._refuse_host(host, f"the host {host} resolves to a non-public address")
        for address in addresses:
            remembered = self._failures.get("address:" + address_bucket(address))
            if remembered is not None:
                raise FetchRefused(f"{remembered} (a recent attempt at its address; not retried yet)")
        return addresses

    def _refuse_host(self, host: str, message: str) -> NoReturn:
        self._failures.add("host:" + host, message)
        raise FetchRefused(message)

    async def _get(self, parts: SplitResult, address: str, *, max_bytes: int, what: str) -> Fetched:
        host, port = parts.hostname or "", parts.port or 443
        target = f"[{address}]" if ":" in address else address
        request = self._http.build_request(
            "GET",
            parts._replace(netloc=f"{target}:{port}").geturl(),
            # Connect to the checked address; Host and TLS (SNI, certificate) stay the named host.
            headers={"Host": parts.netloc, "Accept": "application/json", "Accept-Encoding": "identity"},
            extensions={"sni_hostname": host},
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            message = f"{what} could not be fetched from {host} ({type(exc).__name__})"
            self._failures.add("host:" + host, message)
            self._failures.add("address:" + address_bucket(address), message)
            raise FetchRefused(message) from None
        try:
            return await self._read(response, host=host, max_bytes=max_bytes, what=what)
        finally:
            await response.aclose()

    async def _read(self, response: httpx.Response, *, host: str, max_bytes: int, what: str) -> Fetched:
        if response.status_code != 200:
            # CIMD draft §4: only 200 counts, and redirects are not followed.
            self._refuse_host(host, f"{what} answered HTTP {response.status_code}")
        if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            # We asked for identity; a compressed body could expand far past our limit.
            self._refuse_host(host, f"{what} was sent compressed")
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    self._refuse_host(host, f"{what} is larger than {max_bytes} bytes")
        except httpx.HTTPError as exc:
            self._refuse_host(host, f"{what} could not be read from {host} ({type(exc).__name__})")
        return Fetched(body=bytes(body), headers=response.headers)
