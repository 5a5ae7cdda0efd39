"""One log line per refused OAuth or MCP request, saying what an operator needs to act: where,
the OAuth error code and description the client received, the status, and who asked (client id,
and on the MCP endpoint the person and the tool). Never a token, code, secret or state: callers
pass only these fields, and the description is the one the client was sent.

The same fields travel as structured keys (`extra`) for the JSON log format (logs.py).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("auth_mcp.refused")

# Where the bearer guard leaves, in a request's ASGI scope, its 403 insufficient_scope answer for
# the app behind it to give (a gateway upstream's policy decides scopes only once it read the body):
# `await scope[STEP_UP_KEY](scope, receive, send, missing_scopes, tool)`.
STEP_UP_KEY = "auth_mcp.step_up"


def log_refusal(
    *,
    endpoint: str,
    status: int,
    error: str,
    description: str | None,
    client_id: str | None = None,
    person: str | None = None,
    person_id: int | None = None,
    tool: str | None = None,
    level: int = logging.INFO,
) -> None:
    if not logger.isEnabledFor(level):
        return
    who = f"client {client_id or '-'}"
    if person is not None:
        who += f", person {person} ({person_id})"
    if tool is not None:
        who += f", tool {tool}"
    logger.log(
        level,
        "refused %s %d %s: %s (%s)",
        endpoint,
        status,
        error,
        description or "-",
        who,
        extra={
            "event": "refused",
            "endpoint": endpoint,
            "status": status,
            "error": error,
            "error_description": description,
            "client_id": client_id,
            "person": person,
            "person_id": person_id,
            "tool": tool,
        },
    )
