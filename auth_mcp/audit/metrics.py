"""Prometheus metrics of tool calls, per upstream. Labels stay bounded: the configured upstream
names (plus "builtin") and the four outcomes; never a tool, a person or a client."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from auth_mcp.audit.events import AuditEvent
from auth_mcp.http.metrics import LatencyHistogram

_UPSTREAM_OUTCOME = attrgetter("upstream", "outcome")
_UPSTREAM = attrgetter("upstream")
_LATENCY_MS = attrgetter("latency_ms")


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
        """A batch of events (the audit writer's): each counter and histogram series moved once,
        the counting done in C (`collections.Counter` over the events' fields, NamedTuple items)."""
        for (upstream, outcome), count in collections.Counter(map(_UPSTREAM_OUTCOME, events)).items():
            calls, failures = self._children_of(upstream, outcome)
            calls.inc(count)
            if failures is not None:
                failures.inc(count)
        upstreams = set(map(_UPSTREAM, events))
        for upstream in upstreams:
            label = (upstream if upstream in self._upstreams else "other",)
            # One upstream in the batch (the usual case): every event's latency, taken in C.
            mine = map(_LATENCY_MS, events) if len(upstreams) == 1 else (e.latency_ms for e in events if e.upstream == upstream)
            self.latency.observe_all(label, mine, scale=0.001)

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
