"""One tool call through auth-mcp, as the audit trail keeps it.

Never the arguments' values by default: they are the caller's data (file contents, queries,
secrets pasted into a prompt). Operators who need them opt in (AUTH_MCP_AUDIT_ARGUMENTS), and
even then only the first AUTH_MCP_AUDIT_ARGUMENTS_MAX_BYTES of their JSON are kept.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quoted  # a str as json.dumps writes it (C)
from typing import Any, Literal, NamedTuple, get_args

from auth_mcp.clock import MILLISECONDS, SecondsCache

Outcome = Literal["ok", "tool_error", "refused", "upstream_failure"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
TOOL_NAME_LIMIT = 255  # longer names (a client's junk) are cut to this in the trail
DETAIL_LIMIT = 500


class AuditEvent(NamedTuple):
    """One event per tool call, built off the request path by the audit writer (recorder.py): a
    tuple, the cheapest record Python makes, whose fields are the database row's columns in
    order (storage/audit.py inserts it as it is, `at` made whole seconds)."""

    at: float  # Unix seconds when the call arrived
    github_user_id: int
    github_login: str
    client_id: str
    client_name: str | None
    upstream: str  # the upstream's name, or "builtin"
    tool: str
    outcome: Outcome
    latency_ms: float
    request_id: str
    detail: str | None = None  # why it was refused or failed (never argument values)
    arguments: str | None = None  # JSON of the arguments, only with the opt-in, capped

    def fields(self) -> dict[str, Any]:
        """The event as one flat JSON object (the log line, `auth-mcp audit --json`)."""
        entry: dict[str, Any] = {
            "time": iso_milliseconds(self.at),
            "github_user_id": self.github_user_id,
            "github_login": self.github_login,
            "client_id": self.client_id,
            "client_name": self.client_name,
            "upstream": self.upstream,
            "tool": self.tool,
            "outcome": self.outcome,
            "latency_ms": round(self.latency_ms, 3),
            "request_id": self.request_id,
            "detail": self.detail,
        }
        if self.arguments is not None:
            entry["arguments"] = self.arguments
        return entry

    def json_text(self) -> str:
        """`fields()` as `json.dumps` writes it (ASCII only), made by hand: the audit writer makes
        one per tool call at INFO, and json.dumps's set-up per call cost twice the rest."""
        key = (self.github_user_id, self.github_login, self.client_id, self.client_name, self.upstream, self.tool, self.outcome)
        middle = _MIDDLES.get(key)
        if middle is None:
            # Who called what, and how it went: the same for most calls of a client's session.
            middle = (
                f"{self.github_user_id!r}, "
                f'"github_login": {_quoted(self.github_login)}, "client_id": {_quoted(self.client_id)}, '
                f'"client_name": {_nullable(self.client_name)}, "upstream": {_quoted(self.upstream)}, '
                f'"tool": {_quoted(self.tool)}, "outcome": {_quoted(self.outcome)}'
            )
            if len(_MIDDLES) < _MIDDLES_LIMIT:
                _MIDDLES[key] = middle
        text = (
            f'{{"time": "{iso_milliseconds(self.at)}", "github_user_id": {middle}, '
            f'"latency_ms": {round(self.latency_ms, 3)!r}, "request_id": {_quoted(self.request_id)}, '
            f'"detail": {_nullable(self.detail)}'
        )
        if self.arguments is not None:
            return f'{text}, "arguments": {_quoted(self.arguments)}}}'
        return text + "}"


# An event's fields in AuditEvent's order: the event itself, or a plain tuple of them, which the
# garbage collector stops walking at its first pass (it walks a NamedTuple at every pass), for
# the thousands that wait up to a second for the database (recorder.py, storage/audit.py).
EventRow = tuple[Any, ...]

# The JSON of an event's who-called-what fields, by their values; bounded (past it: no memo).
_MIDDLES: dict[tuple[Any, ...], str] = {}
_MIDDLES_LIMIT = 4096
_SECOND = SecondsCache(lambda second: datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))


def iso_milliseconds(at: float) -> str:
    """`datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")`, the date and time
    made once per second (rounded to the microsecond first, as datetime does)."""
    second = int(at)
    micros = round((at - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_SECOND(second)}.{MILLISECONDS[micros // 1000]}+00:00"


def _nullable(text: str | None) -> str:
    return "null" if text is None else _quoted(text)


def bounded(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]


def capped_arguments(arguments: Any, max_bytes: int) -> str:
    """The arguments as compact JSON, cut to `max_bytes` UTF-8 bytes (marked when cut)."""
    encoded = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    if len(encoded) <= max_bytes:
        return encoded.decode()
    return encoded[:max_bytes].decode(errors="ignore") + "…(truncated)"
