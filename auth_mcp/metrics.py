"""Prometheus metrics, served at /metrics: logins, tokens, GitHub calls, request latency.

One registry per app (not the process-global default), so several apps in one process (tests)
do not collide. Label values are low-cardinality by construction: route templates, OAuth error
codes, GitHub endpoint labels; never a token, a user or a client id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
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
        self.github_requests = Counter(
            "auth_mcp_github_requests", "Requests to GitHub, by endpoint and HTTP status", ["endpoint", "status"], registry=self.registry
        )
        self.github_rate_limit_remaining = Gauge(
            "auth_mcp_github_rate_limit_remaining",
            "x-ratelimit-remaining of the latest GitHub API answer (per person, so a sample, not a total)",
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "auth_mcp_http_request_duration_seconds",
            "HTTP request latency, by route template, method and status",
            ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def github_call(self, endpoint: str, status: int | None, remaining: str | None) -> None:
        self.github_requests.labels(endpoint, str(status) if status is not None else "error").inc()
        if remaining is not None and remaining.isdigit():
            self.github_rate_limit_remaining.set(int(remaining))

    async def endpoint(self, _request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
