"""Redirects that leave the person's device go through a page they confirm first.

RFC 9700 §4.11.2 (the authorization server as open redirector): anyone can register a client
whose redirect URI is their own website and hand people a link to this server; sent straight
on, the person would land on that site with this server's name vouching for it. So an error
met before the person approved, and a denial, go to a website only through a page that names
the site and leaves the choice to them. Loopback and native-app redirect URIs stay on the
person's own device and are redirected at once, as clients expect.

"A website" is not only https: several registrable private-use schemes make the operating
system open a browser at a URL of the sender's choosing (`microsoft-edge:https://...`,
`x-safari-https://...`, `googlechrome://...`, Android `intent://...`), so those count too, as
does any private-use URI that carries an http(s) URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.responses import Response

from auth_mcp.http.hosts import is_loopback_host
from auth_mcp.http.pages import Pages

# URI schemes that launch a web browser at a URL given in the rest of the URI.
BROWSER_SCHEMES = frozenset(
    {
        "microsoft-edge",
        "microsoft-edge-holographic",
        "x-safari-http",
        "x-safari-https",
        "googlechrome",
        "googlechromes",
        "googlechrome-x-callback",
        "firefox",
        "firefox-focus",
        "firefox-private",
        "fenix",
        "opera-http",
        "opera-https",
        "brave",
        "duckduckgo",
        "intent",
        "android-app",
        "x-web-search",
    }
)


def leaves_the_device(uri: str) -> bool:
    """True for a redirect URI that can put the person on someone else's website."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return True
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return not is_loopback_host(parts.hostname)
    if scheme in BROWSER_SCHEMES:
        return True
    remainder = unquote(uri[len(scheme) + 1 :])
    return bool(re.search(r"https?:", remainder, re.IGNORECASE))


def destination_host(uri: str) -> str:
    """The site a redirect URI leads to, as the person should see it."""
    parts = urlsplit(uri)
    if parts.scheme.lower() in ("http", "https"):
        return parts.hostname or uri
    embedded = re.search(r"https?://([^/?#:]+)", unquote(uri), re.IGNORECASE)
    if embedded is not None:
        return embedded.group(1)
    return parts.hostname or f"{parts.scheme}:"


def confirmation_page(pages: Pages, location: str, *, title: str, default_message: str) -> Response:
    """A page naming where `location` leads, with a link the person may follow (or not)."""
    query, host = dict(parse_qsl(urlsplit(location).query)), destination_host(location)
    return pages.error(
        status_code=400,
        title=title,
        message=query.get("error_description") or default_message,
        hint=f"The application asked to be sent back to {host} with this answer. "
        "Continue only if you trust that site and were expecting to sign in.",
        error=query.get("error"),
        continue_url=location,
        continue_host=host,
    )
