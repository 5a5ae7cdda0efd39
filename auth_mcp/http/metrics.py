"""Prometheus metrics, served at /metrics: logins, tokens, GitHub calls, request latency.

One registry per app (not the process-global default), so several apps in one process (tests)
do not collide. Label values are low-cardinality by construction: route templates, OAuth error
codes, GitHub endpoint labels; never a token, a user or a client id.
"""

from __future__ import annotations

import hmac
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter(
            "auth_mcp_logins", "GitHub logins completed at /github/callback, by outcome", ["outcome"], registry=self.registry
        )
        self.tokens_issued = Counter(
            "auth_mcp_tokens_issued", "MCP token pairs issued, by grant type", ["grant_type"], registry=self.registry
        )
        self.tokens_refused = Counter(
            "auth_mcp_tokens_refused", "Bearer tokens or grants refused, by reason", ["reason"], registry=self.registry
        )
        self.storage_evictions = Counter(
            "auth_mcp_storage_evictions",
            "Unused rows evicted because a global cap was reached (AUTH_MCP_MAX_*), by table",
            ["table"],
            registry=self.registry,
        )
        self.github_requests = Counter(
            "auth_mcp_github_requests", "Requests to GitHub, by endpoint and HTTP status", ["endpoint", "status"], registry=self.registry
        )
        self.github_rate_limit_remaining = Gauge(
            "auth_mcp_github_rate_limit_remaining",
            "x-ratelimit-remaining of the latest GitHub API answer (per person, so a sample, not a total)",
            registry=self.registry,
        )
        self.request_seconds = LatencyHistogram(
            "auth_mcp_http_request_duration_seconds",
            "HTTP request latency, by route template, method and status",
            ("route", "method", "status"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(self.request_seconds)

    def github_call(self, endpoint: str, status: int | None, remaining: str | None) -> None:
        self.github_requests.labels(endpoint, str(status) if status is not None else "error").inc()
        if remaining is not None and remaining.isdigit():
            self.github_rate_limit_remaining.set(int(remaining))

    async def endpoint(self, _request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def guarded_endpoint(self, token: str) -> Callable[[Request], Awaitable[Response]]:
        """/metrics for whoever presents `Authorization: Bearer <token>` (Prometheus:
        `authorization: {credentials_file: ...}`), 401 for everyone else. The metrics are not
        secret one by one, but together they describe the traffic and its failures."""
        expected = f"Bearer {token}".encode()

        async def metrics_for_the_scraper(request: Request) -> Response:
            presented = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(presented, expected):  # constant time
                return Response("A bearer token is required.\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await self.endpoint(request)

        return metrics_for_the_scraper


class LatencyHistogram:
    """A Prometheus histogram observed once per HTTP request, from the event loop's thread only.

    Written by hand because prometheus_client's `Histogram` takes a lock for its sum and for the
    bucket on every observation, which made it a third of the access log's cost per request
    (about 10,000 instructions, measured with callgrind). Here observations and the /metrics
    scrape both run on the one event-loop thread, so plain counters are safe. The exposition
    is the standard one: cumulative `_bucket{le=...}`, `_count` and `_sum` per label set.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self._bounds = tuple(float(bound) for bound in buckets)
        # Per label set: a count per bucket (the last one is +Inf), then the sum.
        self._series: dict[tuple[object, ...], list[float]] = {}

    def observe(self, labels: tuple[object, ...], seconds: float) -> None:
        """One observation; `labels` are the label values in order (made strings at scrape time)."""
        series = self._series.get(labels) or self._new_series(labels)
        series[bisect_left(self._bounds, seconds)] += 1  # the first bucket whose bound is >= seconds (le)
        series[-1] += seconds

    def observe_all(self, labels: tuple[object, ...], values: Iterable[float], *, scale: float = 1.0) -> None:
        """Many observations with the same labels (a batch): each of `values` times `scale` seconds."""
        series = self._series.get(labels) or self._new_series(labels)
        bounds, total = self._bounds, 0.0
        for value in values:
            seconds = value * scale
            series[bisect_left(bounds, seconds)] += 1
            total += seconds
        series[-1] += total

    def _new_series(self, labels: tuple[object, ...]) -> list[float]:
        """A label set's first observation: a count per bucket (the last one is +Inf), then the sum."""
        series: list[float] = [0] * (len(self._bounds) + 2)
        self._series[labels] = series
        return series

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, series in list(self._series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip([*map(_le, self._bounds), "+Inf"], series[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric([str(value) for value in labels], buckets, series[-1])
        yield family


def _le(bound: float) -> str:
    # As prometheus_client writes bucket bounds: 0.005, 1.0, 10.0.
    return repr(bound)
