"""Redirect URI policy: what a client may register, and when a requested URI matches.

Registration (RFC 7591 §2, OAuth 2.1 §2.3.1, RFC 8252 §7): https anywhere; http only on the
loopback interface; private-use schemes for native apps. Never a fragment, credentials,
wildcards, or a scheme that executes or reads content in the browser (javascript:, data: ...).
Matching (OAuth 2.1 §4.1.1): exact string comparison, except that a loopback redirect may come
back on any port (RFC 8252 §7.3), because native apps bind an ephemeral port.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000

# Schemes that run or read content in the user agent, or are not application callbacks at all.
_FORBIDDEN_SCHEMES = frozenset(
    {"javascript", "data", "file", "vbscript", "blob", "about", "filesystem", "view-source", "ftp", "ws", "wss", "mailto", "tel"}
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_LOOPBACK_IP_HOSTS = frozenset({"127.0.0.1", "::1"})
_LOOPBACK_HOSTS = _LOOPBACK_IP_HOSTS | {"localhost"}


class RedirectUriRejected(ValueError):
    """Why a redirect URI may not be registered; the message is safe to return to the client."""


def check_registrable(uri: str) -> None:
    """Raise `RedirectUriRejected` unless `uri` may be registered."""
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise RedirectUriRejected(f"redirect URIs are limited to {MAX_REDIRECT_URI_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in uri):
        raise RedirectUriRejected("a redirect URI must not contain whitespace or control characters")
    if "*" in uri:
        raise RedirectUriRejected("wildcards are not allowed in redirect URIs: register each URI exactly")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise RedirectUriRejected(f"{uri!r} is not a valid URI") from None
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.match(scheme):
        raise RedirectUriRejected(f"{uri!r} is not an absolute URI")
    if parts.fragment or uri.endswith("#"):
        # OAuth 2.1 §2.3.1: the redirect URI MUST NOT include a fragment component.
        raise RedirectUriRejected("a redirect URI must not contain a fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise RedirectUriRejected("a redirect URI must not contain user credentials")
    if scheme in _FORBIDDEN_SCHEMES:
        raise RedirectUriRejected(f"the {scheme}: scheme is not allowed for redirect URIs")
    if scheme == "https":
        if not parts.hostname:
            raise RedirectUriRejected("an https redirect URI needs a host")
        return
    if scheme == "http":
        # RFC 8252 §7.3 / MCP security considerations: plain http only to the loopback interface.
        if parts.hostname not in _LOOPBACK_HOSTS:
            raise RedirectUriRejected("http redirect URIs are only allowed on the loopback interface (127.0.0.1, [::1], localhost); use https")
        return
    # RFC 8252 §7.1 private-use scheme of a native app (com.example.app:/cb, cursor://...).
    # §7.1 asks for reverse-domain names; single-label schemes are accepted too, because the
    # clients people use register them (cursor://, vscode://), and the consent page shows them.
    if not (parts.netloc or parts.path):
        raise RedirectUriRejected(f"{uri!r} has no path after its scheme")


def matches(requested: str, registered: list[str]) -> str | None:
    """The registered URI that `requested` matches, or None.

    Exact match first; otherwise a loopback redirect over http may differ only in its port
    (RFC 8252 §7.3). Deliberate deviation: RFC 8252 §7.3 names the IP literals 127.0.0.1 and
    [::1]; we also give `localhost` the port leeway, because MCP clients register it (Claude
    Code's metadata document lists http://localhost/callback and comes back on a random port)
    and browsers resolve `localhost` to the loopback interface only. The host must match exactly:
    localhost never stands in for 127.0.0.1 or the other way round.
    """
    if requested in registered:
        return requested
    try:
        asked = urlsplit(requested)
        asked.port  # noqa: B018
    except ValueError:
        return None
    if (
        asked.scheme != "http"
        or asked.hostname not in _LOOPBACK_HOSTS
        or asked.fragment
        or asked.username is not None
        or asked.password is not None
    ):
        return None
    for candidate in registered:
        try:
            known = urlsplit(candidate)
            known.port  # noqa: B018
        except ValueError:
            continue
        if (
            known.scheme == "http"
            and known.hostname == asked.hostname
            and known.path == asked.path
            and known.query == asked.query
            and not known.fragment
        ):
            return candidate
    return None
