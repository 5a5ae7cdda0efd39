"""GitHub's rate limits, respected: after GitHub says "rate limited", nobody calls it for that
person until the time it gave.

GitHub's REST docs ("Rate limits for the REST API", "Best practices"): on 403/429 with
`x-ratelimit-remaining: 0`, do not call again before `x-ratelimit-reset`; on a secondary limit
wait `retry-after` seconds, or at least a minute without it; an integration that keeps calling
while limited may be banned. The primary limit is per person (5,000 an hour, shared by all of
their tokens), so calls are held back per person where the caller knows who it is, else per
token. In-process: each replica learns the limit from its own first refused call.
"""

from __future__ import annotations

from collections import OrderedDict

from auth_mcp.clock import Clock
from auth_mcp.github.models import GitHubRateLimited

MAX_TRACKED = 10_000


class RateLimitBackoff:
    """Who may not call GitHub until when (bounded; the soonest-expiring entries go first when full)."""

    def __init__(self, *, clock: Clock, max_entries: int = MAX_TRACKED) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._until: OrderedDict[str, GitHubRateLimited] = OrderedDict()

    def holding(self, key: str) -> GitHubRateLimited | None:
        """The rate limit still in force for `key`, restated with the time left; None if it may call."""
        limited = self._until.get(key)
        if limited is None:
            return None
        now = int(self._clock.now())
        if limited.retry_at <= now:
            del self._until[key]
            return None
        return GitHubRateLimited(retry_at=limited.retry_at, secondary=limited.secondary, now=now)

    def hold(self, key: str, limited: GitHubRateLimited) -> None:
        """No calls for `key` before `limited.retry_at` (a later limit already known is kept)."""
        known = self._until.get(key)
        if known is not None and known.retry_at >= limited.retry_at:
            return
        self._until[key] = limited
        if len(self._until) > self._max_entries:
            now = int(self._clock.now())
            for stale in [k for k, v in self._until.items() if v.retry_at <= now]:
                del self._until[stale]
            while len(self._until) > self._max_entries:
                soonest = min(self._until, key=lambda k: self._until[k].retry_at)
                del self._until[soonest]
