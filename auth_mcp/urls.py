"""Adding parameters to a URL's query: the one way this server does it."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def with_query(url: str, **params: str | None) -> str:
    """`url` with `params` in its query. The URL's own parameters are kept, blank ones included
    (OAuth 2.1 §4.1.2: a registered redirect URI's query is preserved); a parameter named in
    `params` replaces the URL's own of that name; a None value adds nothing."""
    parts = urlsplit(url)
    added = {name: value for name, value in params.items() if value is not None}
    kept = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name not in added]
    return urlunsplit(parts._replace(query=urlencode([*kept, *added.items()])))
