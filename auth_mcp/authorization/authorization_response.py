"""Authorization responses: where the person's browser goes back to the MCP client."""

from __future__ import annotations

from auth_mcp.urls import with_query


def authorization_response_url(redirect_uri: str, *, issuer: str, state: str | None, **params: str | None) -> str:
    """The client's redirect URI with `params`, the client's `state`, and `iss`.

    RFC 9207 §2: every authorization response carries `iss`, errors included, so a client that
    talks to several authorization servers can tell which one answered (mix-up defence).
    Existing query parameters of the registered URI are kept (OAuth 2.1 §4.1.2).
    """
    return with_query(redirect_uri, **params, state=state, iss=issuer)
