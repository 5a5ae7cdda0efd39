"""The audit trail: every tool call through auth-mcp, in the database, the log and the metrics."""

from auth_mcp.audit.events import OUTCOMES, AuditEvent, Outcome
from auth_mcp.audit.recorder import AuditRecorder

__all__ = ["OUTCOMES", "AuditEvent", "AuditRecorder", "Outcome"]
