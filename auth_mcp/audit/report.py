"""The audit trail for an operator (`auth-mcp audit`): the --since option, and an event's cells."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from auth_mcp.audit.events import AuditEvent

_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WIDTH = 40


def parse_since(text: str, *, now: float) -> float:
    """`30m`, `12h`, `7d` ago, or an ISO date / date-time (UTC unless it names an offset)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give a duration such as 30m, 12h or 7d, or a date such as 2026-11-30 or 2026-11-30T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def cells(event: AuditEvent) -> list[str]:
    """One row of the table, in admin.AUDIT_HEADERS order."""
    return [
        datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        _fit(f"{event.github_login} ({event.github_user_id})"),
        _fit(event.client_name or event.client_id),
        _fit(event.upstream),
        _fit(event.tool),
        event.outcome,
        f"{event.latency_ms:.1f}",
        event.request_id,
    ]


def _fit(text: str) -> str:
    # Terminal control characters from client-chosen names must not reach the operator's screen.
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"
