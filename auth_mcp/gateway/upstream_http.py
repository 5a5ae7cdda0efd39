"""The HTTP client the gateway reaches upstreams with.

aiohttp rather than httpx (used elsewhere, towards GitHub): on the gateway's hot path httpx cost
about 1.4 ms of CPU per forwarded call, more than a whole tool call in the Python SDK upstream
of bench/gateway.py, and aiohttp about 0.4 ms. One connection pool for every upstream, created
in the event loop on first use; no proxy or netrc from the environment (`trust_env=False`), so
nothing in between can pick up identity tokens.
"""

from __future__ import annotations

import aiohttp

MAX_CONNECTIONS = 1000


class UpstreamHttp:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                # The client's own headers go through as given; aiohttp adds none of its defaults.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),  # one person's cookies never reach another's request
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
