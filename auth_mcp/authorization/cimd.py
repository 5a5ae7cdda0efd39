"""Client ID Metadata Documents (MCP 2026-07-28 client registration; draft-ietf-oauth-client-id-
metadata-document): a `client_id` that is an HTTPS URL names a JSON document describing the client.

Fetching a URL a stranger chose is a server-side request forgery risk and a way to make this
server wait; document_fetcher.py holds the rules for both (public addresses only, one deadline
over waiting and fetching, bounded slots, failures remembered). On top of it, here:
- a `client_id` is a document URL when it is https with a path, no dot segments (draft §3);
- the document must name itself (`client_id` equal to the URL), list redirect URIs that pass our
  registration policy, name the client, use no shared secret (draft §4.1), and be valid Unicode
  throughout (a lone surrogate can be neither stored nor shown);
- good documents are cached for their HTTP freshness lifetime, clamped to [1 minute, 1 day];
  documents that break the rules are remembered as such for a minute, like failed fetches.
Only the fields this server uses are kept (clients.kept_metadata).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from mcp.server.auth.provider import RegistrationError
from pydantic import ValidationError

from auth_mcp.authorization.clients import RegisteredClient, check_registration, kept_metadata
from auth_mcp.authorization.document_fetcher import (
    FAILURE_TTL,
    FetchRefused,
    PublicDocumentFetcher,
    Resolver,
)
from auth_mcp.clock import Clock
from auth_mcp.scopes import SUPPORTED_SCOPES

logger = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 5 * 1024  # draft §6.6 recommends 5 kilobytes
MIN_CACHE_SECONDS = 60
MAX_CACHE_SECONDS = 24 * 3600
MAX_CACHED_DOCUMENTS = 1000
_SHARED_SECRET_METHODS = frozenset({"client_secret_post", "client_secret_basic", "client_secret_jwt"})
_WHAT = "the client metadata document"


class ClientMetadataError(Exception):
    """Why a metadata-document client cannot be used; safe to show to the person.

    `busy`: this server is at its fetch limits; the same request may work shortly
    (OAuth `temporarily_unavailable`), so the document is not blamed.
    """

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


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


@dataclass(frozen=True)
class _Cached:
    client: RegisteredClient | None  # None: the document broke the rules, for `error`
    until: float
    error: str = ""


class MetadataDocumentClients:
    """Resolves URL client ids to `RegisteredClient`s (cached).

    The fetcher may be shared with other documents fetched for strangers (a client's JWK Set):
    its limits then hold for all of them together.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        offered_scopes: Sequence[str] = SUPPORTED_SCOPES,
        fetcher: PublicDocumentFetcher | None = None,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._offered_scopes = tuple(offered_scopes)
        self._owns_fetcher = fetcher is None
        self.fetcher = fetcher or PublicDocumentFetcher(clock=clock, resolver=resolver, transport=transport)
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        if self._owns_fetcher:
            await self.fetcher.aclose()

    async def get(self, client_id: str) -> RegisteredClient:
        """The client the document describes; raises `ClientMetadataError` saying what is wrong."""
        cached = self._cached(client_id)
        if cached is not None:
            return cached
        if not is_metadata_document_url(client_id):
            raise ClientMetadataError("the client_id is not an https URL with a path")
        # One deadline for everything this request waits for: other requests for the same
        # document, a fetch slot, the fetch (document_fetcher.py).
        deadline_at = asyncio.get_running_loop().time() + self.fetcher.deadline
        lock = self._locks.setdefault(client_id, asyncio.Lock())
        try:
            async with asyncio.timeout_at(deadline_at):
                await lock.acquire()  # one fetch per document at a time, however many requests need it
        except TimeoutError:
            raise ClientMetadataError(f"{_WHAT} could not be fetched in time; try again shortly", busy=True) from None
        try:
            cached = self._cached(client_id)
            if cached is not None:
                return cached
            fetched = await self.fetcher.fetch(client_id, max_bytes=MAX_DOCUMENT_BYTES, what=_WHAT, deadline_at=deadline_at)
        except FetchRefused as exc:
            raise ClientMetadataError(str(exc), busy=exc.busy) from None
        finally:
            lock.release()
            if not lock.locked():
                self._locks.pop(client_id, None)
        now = self._clock.now()
        try:
            client = self._parse(client_id, fetched.body)
        except ClientMetadataError as exc:
            self._remember(client_id, _Cached(None, now + FAILURE_TTL, str(exc)))
            raise
        self._remember(client_id, _Cached(client, now + _freshness(fetched.headers, now)))
        return client

    def _cached(self, client_id: str) -> RegisteredClient | None:
        """The cached client; raises the remembered refusal; None when there is nothing fresh."""
        cached = self._cache.get(client_id)
        if cached is None or cached.until <= self._clock.now():
            return None
        self._cache.move_to_end(client_id)
        if cached.client is None:
            raise ClientMetadataError(cached.error)
        return cached.client

    def _remember(self, client_id: str, entry: _Cached) -> None:
        self._cache[client_id] = entry
        self._cache.move_to_end(client_id)
        while len(self._cache) > MAX_CACHED_DOCUMENTS:
            self._cache.popitem(last=False)

    def _parse(self, client_id: str, body: bytes) -> RegisteredClient:
        try:
            document = json.loads(body)
        except ValueError:
            raise ClientMetadataError(f"{_WHAT} is not valid JSON") from None
        if not isinstance(document, dict):
            raise ClientMetadataError(f"{_WHAT} is not a JSON object")
        for key, value in document.items():
            if _has_surrogate(key) or _has_surrogate(value):
                # JSON escapes can spell lone surrogates, which no UTF-8 page or database holds.
                field = key if not _has_surrogate(key) else "a field name"
                raise ClientMetadataError(f"{_WHAT}'s {field} is not valid Unicode (a lone surrogate)")
        if document.get("client_id") != client_id:
            # draft §4.1: simple string comparison with the URL it was fetched from.
            raise ClientMetadataError(f"{_WHAT}'s client_id is not its own URL")
        if not isinstance(document.get("client_name"), str) or not document["client_name"].strip():
            raise ClientMetadataError(f"{_WHAT} has no client_name")
        method = document.get("token_endpoint_auth_method", "none")
        if not isinstance(method, str):
            raise ClientMetadataError(f"{_WHAT}'s token_endpoint_auth_method is not a string")
        if method in _SHARED_SECRET_METHODS or "client_secret" in document:
            raise ClientMetadataError("a metadata-document client may not use a shared secret")
        if method != "none":
            raise ClientMetadataError(f"token_endpoint_auth_method {method!r} is not supported here; use none")
        try:
            client = RegisteredClient.model_validate(
                {**kept_metadata(document), "client_secret": None, "token_endpoint_auth_method": "none"}
            )
            checked = check_registration(client, offered_scopes=self._offered_scopes)
        except ValidationError as exc:
            raise ClientMetadataError(f"{_WHAT} is malformed: {exc.errors()[0]['msg']}") from None
        except RegistrationError as exc:
            raise ClientMetadataError(f"{_WHAT} is not acceptable: {exc.error_description}") from None
        return RegisteredClient.model_validate({**checked.model_dump(), "offered_scopes": self._offered_scopes})


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


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
