"""Prometheus metrics of tool calls, per upstream. Labels stay bounded: the configured upstream
names (plus "builtin") and the four outcomes; never a tool, a person or a client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from auth_mcp.audit.events import AuditEvent
from auth_mcp.http.metrics import LatencyHistogram


class AuditMetrics:
    def __init__(self, registry: CollectorRegistry, *, upstreams: frozenset[str]) -> None:
        self._upstreams = upstreams
        self.calls = Counter(
            "auth_mcp_tool_calls",
            "Tool calls through auth-mcp, by upstream and outcome",
            ["upstream", "outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "auth_mcp_tool_call_failures",
            "Tool calls that did not succeed (tool_error, refused, upstream_failure), by upstream",
            ["upstream"],
            registry=registry,
        )
        # Observed by the audit writer alone, on the event loop: the lock-free histogram suffices.
        self.latency = LatencyHistogram(
            "auth_mcp_tool_call_duration_seconds",
            "Tool call latency through auth-mcp, by upstream",
            ("upstream",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        registry.register(self.latency)
        # Per (upstream, outcome): the labelled children, found once (labels() validates and locks).
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.dropped = Counter(
            "auth_mcp_audit_events_dropped", "Audit events dropped because the database stayed unreachable", registry=registry
        )

    def observe(self, events: Sequence[AuditEvent]) -> None:
        """A batch of events (the audit writer's): counters moved once per upstream and outcome."""
        counts: dict[tuple[str, str], int] = {}
        latency = self.latency.observe
        for event in events:
            key = (event.upstream, event.outcome)
            counts[key] = counts.get(key, 0) + 1
            latency((event.upstream if event.upstream in self._upstreams else "other",), event.latency_ms / 1000)
        for (upstream, outcome), count in counts.items():
            calls, failures = self._children_of(upstream, outcome)
            calls.inc(count)
            if failures is not None:
                failures.inc(count)

    def _children_of(self, upstream: str, outcome: str) -> tuple[Any, Any]:
        key = (upstream, outcome)
        children = self._children.get(key)
        if children is None:
            label = upstream if upstream in self._upstreams else "other"
            failures = self.failures.labels(label) if outcome != "ok" else None
            children = self._children[key] = (self.calls.labels(label, outcome), failures)
            if len(self._children) > 4 * (len(self._upstreams) + 1) * 4:  # names outside the config: no memo
                del self._children[key]
        return children
