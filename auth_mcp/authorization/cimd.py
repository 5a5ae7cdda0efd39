"""Client ID Metadata Documents (MCP 2026-07-28 client registration; draft-ietf-oauth-client-id-
metadata-document): a `client_id` that is an HTTPS URL names a JSON document describing the client.

Fetching a URL a stranger chose is a server-side request forgery risk and a way to make this
server wait; document_fetcher.py holds the rules for both (public addresses only, one deadline
over waiting and fetching, bounded slots, failures remembered). On top of it, here:
- a `client_id` is a document URL when it is https with a path, no dot segments (draft §3);
- the document must name itself (`client_id` equal to the URL), list redirect URIs that pass our
  registration policy, name the client, use no shared secret (draft §4.1), and be valid Unicode
  throughout (a lone surrogate can be neither stored nor shown);
- the document's `token_endpoint_auth_method` is honoured: `none`, or `private_key_jwt` with
  its keys in `jwks` or at an https `jwks_uri` (fetched by `fetch_json`, through the same fetcher
  and limits, for client_assertion.py); another method is replaced by the first of its
  `token_endpoint_auth_methods_supported` that we implement;
- grant types we do not implement (VS Code lists the device grant, Claude the JWT bearer grant)
  are left out rather than refused, as long as the code grant is there;
- good documents are cached for their HTTP freshness lifetime, clamped to [1 minute, 1 day];
  documents that break the rules are remembered as such for a minute, like failed fetches.
Only the fields this server uses are kept (clients.kept_metadata, and the key fields above).
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

from auth_mcp.authorization.client_assertion import PRIVATE_KEY_JWT, SIGNING_ALGORITHMS
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
MAX_KEY_SET_BYTES = 64 * 1024  # a JWK Set of a few RSA keys is a few kilobytes
MIN_CACHE_SECONDS = 60
MAX_CACHE_SECONDS = 24 * 3600
MAX_CACHED_DOCUMENTS = 1000
_SHARED_SECRET_METHODS = frozenset({"client_secret_post", "client_secret_basic", "client_secret_jwt"})
_WHAT = "the client metadata document"
# What a metadata-document client may authenticate with at /token, in our order of preference.
DOCUMENT_AUTH_METHODS = ("none", PRIVATE_KEY_JWT)
_GRANT_TYPES = ("authorization_code", "refresh_token")
# The document's fields private_key_jwt needs, kept with the client (in memory, never stored).
_KEY_FIELDS = ("jwks", "jwks_uri", "token_endpoint_auth_signing_alg")


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

    async def fetch_json(self, url: str) -> tuple[Any, float]:
        """A JSON resource a document points to (its `jwks_uri`), through the same fetcher and
        limits as documents, and its freshness lifetime. Raises `ClientMetadataError`."""
        if not is_metadata_document_url(url):
            raise ClientMetadataError("the jwks_uri is not an https URL with a path")
        try:
            fetched = await self.fetcher.fetch(url, max_bytes=MAX_KEY_SET_BYTES, what="the client's jwks_uri")
        except FetchRefused as exc:
            raise ClientMetadataError(str(exc), busy=exc.busy) from None
        try:
            return json.loads(fetched.body), _freshness(fetched.headers, self._clock.now())
        except ValueError:
            raise ClientMetadataError("the client's jwks_uri did not answer JSON") from None

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
        method = _auth_method(document)
        grant_types = document.get("grant_types", list(_GRANT_TYPES))
        if not isinstance(grant_types, list) or "authorization_code" not in grant_types:
            raise ClientMetadataError(f"{_WHAT}'s grant_types do not include authorization_code")
        try:
            client = RegisteredClient.model_validate(
                {
                    **kept_metadata(document),
                    "client_secret": None,
                    "token_endpoint_auth_method": "none",
                    "grant_types": [grant for grant in _GRANT_TYPES if grant in grant_types],
                }
            )
            checked = check_registration(client, offered_scopes=self._offered_scopes)
        except ValidationError as exc:
            raise ClientMetadataError(f"{_WHAT} is malformed: {exc.errors()[0]['msg']}") from None
        except RegistrationError as exc:
            raise ClientMetadataError(f"{_WHAT} is not acceptable: {exc.error_description}") from None
        keys = {name: document[name] for name in _KEY_FIELDS if method == PRIVATE_KEY_JWT and name in document}
        try:
            return RegisteredClient.model_validate(
                {**checked.model_dump(), **keys, "token_endpoint_auth_method": method, "offered_scopes": self._offered_scopes}
            )
        except ValidationError as exc:
            raise ClientMetadataError(f"{_WHAT} is malformed: {exc.errors()[0]['msg']}") from None


def _auth_method(document: dict[str, Any]) -> str:
    """The document's token_endpoint_auth_method if we implement it, else the first of its
    `token_endpoint_auth_methods_supported` that we do; with what private_key_jwt needs checked."""
    method = document.get("token_endpoint_auth_method", "none")
    if not isinstance(method, str):
        raise ClientMetadataError(f"{_WHAT}'s token_endpoint_auth_method is not a string")
    if method in _SHARED_SECRET_METHODS or "client_secret" in document:
        # draft §4.1: a document is public; no secret can have been issued for it.
        raise ClientMetadataError("a metadata-document client may not use a shared secret")
    if method not in DOCUMENT_AUTH_METHODS:
        choices = document.get("token_endpoint_auth_methods_supported")
        offered = [m for m in choices if isinstance(m, str)] if isinstance(choices, list) else []
        method = next((m for m in offered if m in DOCUMENT_AUTH_METHODS), "")
        if not method:
            raise ClientMetadataError(
                f"token_endpoint_auth_method {document.get('token_endpoint_auth_method')!r} is not supported here; "
                f"use {' or '.join(DOCUMENT_AUTH_METHODS)}"
            )
    if method == PRIVATE_KEY_JWT:
        _check_key_source(document)
    return method


def _check_key_source(document: dict[str, Any]) -> None:
    """private_key_jwt needs the client's public keys: inline `jwks` or an https `jwks_uri`, not
    both (RFC 7591 §2), and a signing algorithm we accept if it names one."""
    jwks, jwks_uri = document.get("jwks"), document.get("jwks_uri")
    if (jwks is None) == (jwks_uri is None):
        raise ClientMetadataError("a private_key_jwt client's document must give exactly one of jwks and jwks_uri")
    if jwks_uri is not None and (not isinstance(jwks_uri, str) or not is_metadata_document_url(jwks_uri)):
        raise ClientMetadataError(f"{_WHAT}'s jwks_uri must be an https URL with a path")
    if jwks is not None and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
        raise ClientMetadataError(f"{_WHAT}'s jwks is not a JWK Set")
    alg = document.get("token_endpoint_auth_signing_alg")
    if alg is not None and alg not in SIGNING_ALGORITHMS:
        raise ClientMetadataError(
            f"token_endpoint_auth_signing_alg {alg!r} is not accepted; use one of {', '.join(SIGNING_ALGORITHMS)}"
        )


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
