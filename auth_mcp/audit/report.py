"""The audit trail for an operator: `auth-mcp audit` as a table, or as JSON for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from auth_mcp.audit.events import AuditEvent

_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def as_table(events: Sequence[AuditEvent]) -> list[str]:
    header = f"{'time (UTC)':19}  {'GitHub user':24}  {'client':28}  {'upstream':12}  {'tool':28}  {'outcome':16}  {'ms':>8}  request"
    lines = [header]
    for event in events:
        when = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        person = f"{event.github_login} ({event.github_user_id})"
        client = event.client_name or event.client_id
        lines.append(
            f"{when:19}  {_fit(person, 24):24}  {_fit(client, 28):28}  {_fit(event.upstream, 12):12}  {_fit(event.tool, 28):28}  "
            f"{event.outcome:16}  {event.latency_ms:8.1f}  {event.request_id}"
        )
    return lines


def as_json(events: Sequence[AuditEvent]) -> list[str]:
    """One JSON array (`jq '.[]'` makes it one object per line)."""
    return [json.dumps([event.fields() for event in events], ensure_ascii=False, indent=1)]


def _fit(text: str, width: int) -> str:
    # Terminal control characters from client-chosen names must not reach the operator's screen.
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= width else text[: width - 1] + "…"


