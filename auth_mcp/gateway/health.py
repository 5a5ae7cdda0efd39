"""Is each upstream reachable? For `/readyz` and `auth-mcp upstreams`.

An upstream counts as reachable when it answers HTTP at all at its url (any status: without
credentials an MCP endpoint answers 401, 405 or 400, and that is an answer). Refused
connections, timeouts and non-HTTP answers count as down, with the reason. Answers are kept
for a few seconds, so a load balancer polling `/readyz` does not turn into load on upstreams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auth_mcp.clock import Clock
from auth_mcp.gateway.config import Upstream
from auth_mcp.gateway.upstream_http import (
    BrokenAnswer,
    ConnectFailed,
    ConnectTimeout,
    ReadTimeout,
    Target,
    TlsRefused,
    UpstreamHttp,
)

PROBE_TIMEOUT = 2.0
REMEMBER = 5.0  # seconds an answer is reused


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    name: str
    url: str
    reachable: bool
    detail: str  # the HTTP status seen, or why it could not be reached

    def as_json(self) -> dict[str, object]:
        return {"url": self.url, "reachable": self.reachable, "detail": self.detail}


class UpstreamHealth:
    def __init__(self, *, upstreams: Sequence[Upstream], targets: Mapping[str, Target], http: UpstreamHttp, clock: Clock) -> None:
        self._upstreams = list(upstreams)
        self._targets = targets
        self._http = http
        self._clock = clock
        self._last: tuple[float, list[UpstreamStatus]] | None = None

    async def check(self) -> list[UpstreamStatus]:
        """Every upstream's status (probed concurrently, each within PROBE_TIMEOUT seconds)."""
        now = self._clock.now()
        if self._last is not None and now - self._last[0] < REMEMBER:
            return self._last[1]
        statuses = list(await asyncio.gather(*(self._probe(upstream) for upstream in self._upstreams)))
        self._last = (now, statuses)
        return statuses

    async def _probe(self, upstream: Upstream) -> UpstreamStatus:
        # A GET without a session or credentials, over the connections and trust the calls use:
        # the cheapest request every MCP endpoint answers. Only the status line matters; a
        # stream that opens is closed at once.
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                answer = await self._http.request(
                    self._targets[upstream.name],
                    b"GET",
                    [(b"accept", b"text/event-stream")],
                    b"",
                    connect_timeout=PROBE_TIMEOUT,
                    read_timeout=PROBE_TIMEOUT,
                )
        except (TimeoutError, ConnectTimeout, ReadTimeout):
            return UpstreamStatus(upstream.name, upstream.url, False, f"no answer within {PROBE_TIMEOUT:g} s")
        except TlsRefused as exc:
            return UpstreamStatus(upstream.name, upstream.url, False, str(exc))
        except ConnectFailed:
            return UpstreamStatus(upstream.name, upstream.url, False, "connection refused or failed")
        except BrokenAnswer as exc:
            return UpstreamStatus(upstream.name, upstream.url, False, f"not an HTTP answer ({exc})")
        answer.close()
        return UpstreamStatus(upstream.name, upstream.url, True, f"HTTP {answer.status}")
