"""The audit trail: its store, the background writer, metrics, and a gate per upstream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from auth_mcp.app.core import Core
from auth_mcp.audit import AuditRecorder
from auth_mcp.audit.builtin import BUILTIN
from auth_mcp.audit.metrics import AuditMetrics
from auth_mcp.policy import ToolAccess
from auth_mcp.policy.exchange import ToolGate
from auth_mcp.storage.audit import AuditStore


@dataclass
class AuditSide:
    store: AuditStore
    recorder: AuditRecorder
    metrics: AuditMetrics
    core: Core

    @property
    def arguments_max_bytes(self) -> int | None:
        """How much of a call's arguments to keep: None (nothing) unless AUTH_MCP_AUDIT_ARGUMENTS."""
        settings = self.core.settings
        return settings.audit_arguments_max_bytes if settings.audit_arguments else None

    def gate(self, upstream: str, access: ToolAccess) -> ToolGate:
        """Policy and audit for the proxy of one upstream."""
        return ToolGate(
            upstream=upstream,
            access=access,
            recorder=self.recorder,
            clock=self.core.clock,
            arguments_max_bytes=self.arguments_max_bytes,
        )

    async def purge(self) -> int:
        """Delete events older than AUTH_MCP_AUDIT_RETENTION_DAYS (0 keeps them forever)."""
        return await self.store.purge_expired()


def build_audit(core: Core, *, upstreams: Iterable[str]) -> AuditSide:
    store = AuditStore(engine=core.engine, clock=core.clock, retention_days=core.settings.audit_retention_days)
    # Metric labels: the configured upstream names and "builtin", nothing a caller chooses.
    metrics = AuditMetrics(core.metrics.registry, upstreams=frozenset({BUILTIN, *upstreams}))
    return AuditSide(store=store, recorder=AuditRecorder(sink=store, metrics=metrics, lines=core.log_writer), metrics=metrics, core=core)
