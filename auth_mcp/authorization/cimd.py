"""Client ID Metadata Documents (MCP 2026-07-28 client registration; draft-ietf-oauth-client-id-
metadata-document): a `client_id` that is an HTTPS URL names a JSON document describing the client.

Fetching a URL a stranger chose is a server-side request forgery risk, so the fetch:
- only uses https, port as given, no credentials, no fragment, no dot segments (draft §3);
- resolves the name itself and refuses every address that is not globally routable (private,
  loopback, link-local, multicast, reserved, shared, IPv4-mapped), then connects to exactly
  the address it checked (no second DNS answer can swap in an internal one), verifying TLS for
  the original host name;
- follows no redirect, accepts only 200, reads at most 5 KiB, gives up after 5 seconds.
The document must name itself (`client_id` equal to the URL), list redirect URIs that pass our
registration policy, name the client, and use no shared secret (draft §4.1). Good documents are
cached for their HTTP freshness lifetime, clamped to [1 minute, 1 day]; failures are not cached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from mcp.server.auth.provider import RegistrationError
from pydantic import ValidationError

from auth_mcp.authorization.clients import RegisteredClient, check_registration
from auth_mcp.clock import Clock
from auth_mcp.scopes import SUPPORTED_SCOPES

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 5 * 1024  # draft §6.6 recommends 5 kilobytes
FETCH_TIMEOUT = 5.0
MIN_CACHE_SECONDS = 60
MAX_CACHE_SECONDS = 24 * 3600
MAX_CACHED_DOCUMENTS = 1000
MAX_CONCURRENT_FETCHES = 4
_SHARED_SECRET_METHODS = frozenset({"client_secret_post", "client_secret_basic", "client_secret_jwt"})

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> IP addresses. Injected in tests; production uses the system resolver."""


class ClientMetadataError(Exception):
    """Why a metadata-document client cannot be used; safe to show to the person."""


def is_metadata_document_url(client_id: str) -> bool:
    """A `client_id` we treat as a metadata document URL (draft §3: https with a path)."""
    if not client_id.startswith("https://"):
        return False
    try:
        parts = urlsplit(client_id)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    segments = parts.path.split("/")
    return (
        bool(parts.hostname)
        and parts.path not in ("", "/")
        and not parts.fragment
        and parts.username is None
        and parts.password is None
        and "." not in segments
        and ".." not in segments
    )


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# IPv6 forms that carry an IPv4 address a gateway may reach (NAT64, 6to4, Teredo, IPv4-compatible
# and -translated): refused outright rather than unwrapped, since no client document lives there.
_EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96", "::ffff:0:0:0/96")
)


def is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in network for network in _EMBEDDING_IPV4):
            return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class _Cached:
    client: RegisteredClient
    until: float


class MetadataDocumentClients:
    """Resolves URL client ids to `RegisteredClient`s (cached)."""

    def __init__(
        self,
        *,
        clock: Clock,
        offered_scopes: Sequence[str] = SUPPORTED_SCOPES,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._offered_scopes = tuple(offered_scopes)
        self._resolver = resolver
        self._http = httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=FETCH_TIMEOUT, trust_env=False
        )
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        # A few fetches at a time: slow or silent hosts cannot tie up the resolver's threads.
        self._fetching = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, client_id: str) -> RegisteredClient:
        """The client the document describes; raises `ClientMetadataError` saying what is wrong."""
        cached = self._cache.get(client_id)
        if cached is not None and cached.until > self._clock.now():
            self._cache.move_to_end(client_id)
            return cached.client
        lock = self._locks.setdefault(client_id, asyncio.Lock())
        async with lock:  # one fetch per document at a time, however many requests need it
            cached = self._cache.get(client_id)
            if cached is not None and cached.until > self._clock.now():
                return cached.client
            try:
                async with self._fetching:
                    async with asyncio.timeout(FETCH_TIMEOUT * 2):
                        client, lifetime = await self._fetch(client_id)
            except TimeoutError:
                raise ClientMetadataError("the client metadata document could not be fetched in time") from None
            finally:
                self._locks.pop(client_id, None)
        self._cache[client_id] = _Cached(client, self._clock.now() + lifetime)
        while len(self._cache) > MAX_CACHED_DOCUMENTS:
            self._cache.popitem(last=False)
        return client

    async def _fetch(self, client_id: str) -> tuple[RegisteredClient, float]:
        if not is_metadata_document_url(client_id):
            raise ClientMetadataError("the client_id is not an https URL with a path")
        parts = urlsplit(client_id)
        host = parts.hostname or ""
        port = parts.port or 443
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                addresses = await self._resolver(host, port)
        except (OSError, TimeoutError):
            raise ClientMetadataError(f"the client's host {host} does not resolve") from None
        if not addresses:
            raise ClientMetadataError(f"the client's host {host} does not resolve")
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            # Any non-public answer is refused outright: a name that also resolves inward is a probe.
            raise ClientMetadataError(f"the client's host {host} resolves to a non-public address")
        address = addresses[0]
        target_host = f"[{address}]" if ":" in address else address
        url = parts._replace(netloc=f"{target_host}:{port}").geturl()
        request = self._http.build_request(
            "GET",
            url,
            # Connect to the checked address; Host and TLS (SNI, certificate) stay the named host.
            headers={"Host": parts.netloc, "Accept": "application/json", "Accept-Encoding": "identity"},
            extensions={"sni_hostname": host},
        )
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                response = await self._http.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        # draft-01 §4: only 200 counts, and redirects are not followed.
                        raise ClientMetadataError(f"the client metadata document answered HTTP {response.status_code}")
                    if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
                        # We asked for identity; a compressed body could expand far past our limit.
                        raise ClientMetadataError("the client metadata document was sent compressed")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > MAX_DOCUMENT_BYTES:
                            raise ClientMetadataError(f"the client metadata document is larger than {MAX_DOCUMENT_BYTES} bytes")
                finally:
                    await response.aclose()
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ClientMetadataError(f"the client metadata document could not be fetched ({type(exc).__name__})") from None
        client = self._parse(client_id, bytes(body))
        return client, _freshness(response.headers, self._clock.now())

    def _parse(self, client_id: str, body: bytes) -> RegisteredClient:
        try:
            document = json.loads(body)
        except ValueError:
            raise ClientMetadataError("the client metadata document is not valid JSON") from None
        if not isinstance(document, dict):
            raise ClientMetadataError("the client metadata document is not a JSON object")
        if document.get("client_id") != client_id:
            # draft §4.1: simple string comparison with the URL it was fetched from.
            raise ClientMetadataError("the client metadata document's client_id is not its own URL")
        if not isinstance(document.get("client_name"), str) or not document["client_name"].strip():
            raise ClientMetadataError("the client metadata document has no client_name")
        method = document.get("token_endpoint_auth_method", "none")
        if not isinstance(method, str):
            raise ClientMetadataError("the client metadata document's token_endpoint_auth_method is not a string")
        if method in _SHARED_SECRET_METHODS or "client_secret" in document:
            raise ClientMetadataError("a metadata-document client may not use a shared secret")
        if method != "none":
            raise ClientMetadataError(f"token_endpoint_auth_method {method!r} is not supported here; use none")
        try:
            client = RegisteredClient.model_validate({**document, "client_secret": None, "token_endpoint_auth_method": "none"})
            checked = check_registration(client, offered_scopes=self._offered_scopes)
        except ValidationError as exc:
            raise ClientMetadataError(f"the client metadata document is malformed: {exc.errors()[0]['msg']}") from None
        except RegistrationError as exc:
            raise ClientMetadataError(f"the client metadata document is not acceptable: {exc.error_description}") from None
        return RegisteredClient.model_validate({**checked.model_dump(), "offered_scopes": self._offered_scopes})


_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)


def _freshness(headers: httpx.Headers, now: float) -> float:
    """RFC 9111 freshness lifetime, clamped to our bounds."""
    control = headers.get("cache-control", "")
    lifetime: float | None = None
    if re.search(r"(?:^|,)\s*(?:no-store|no-cache)", control, re.IGNORECASE):
        lifetime = 0
    elif match := _MAX_AGE.search(control):
        age = headers.get("age", "0").strip()
        lifetime = int(match.group(1)) - (int(age) if age.isdigit() else 0)
    elif "expires" in headers:
        try:
            lifetime = parsedate_to_datetime(headers["expires"]).timestamp() - now
        except (TypeError, ValueError):
            lifetime = 0
    if lifetime is None:
        lifetime = 300  # no freshness information: a heuristic five minutes
    return float(min(max(lifetime, MIN_CACHE_SECONDS), MAX_CACHE_SECONDS))
