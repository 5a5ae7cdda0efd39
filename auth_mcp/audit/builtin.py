"""Auditing the built-in tools (at /mcp): an MCP SDK `ServerMiddleware` around every tools/call.

Outermost of our middleware, so it also sees calls the policy refuses. It never keeps a tool
error's text: the SDK's argument-validation errors quote the values the caller sent.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from auth_mcp.audit.events import DETAIL_LIMIT, TOOL_NAME_LIMIT, AuditEvent, Outcome, capped_arguments
from auth_mcp.audit.recorder import AuditRecorder
from auth_mcp.clock import Clock
from auth_mcp.policy.jsonrpc import POLICY_REFUSED

BUILTIN = "builtin"


class BuiltinToolAudit:
    def __init__(self, *, recorder: AuditRecorder, clock: Clock, request_id: Any, arguments_max_bytes: int | None = None) -> None:
        """`request_id` is the access log's context variable; `arguments_max_bytes` None keeps no arguments."""
        self._recorder = recorder
        self._record_later = recorder.later(self._event)
        self._clock = clock
        self._request_id = request_id
        self._arguments_max_bytes = arguments_max_bytes

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        # The request path only notes what happened; the event is built by the audit writer.
        started = perf_counter()
        outcome: Outcome = "tool_error"
        detail: str | None = None
        try:
            result = await call_next(ctx)
            if not (isinstance(result, dict) and result.get("isError")):
                outcome = "ok"
            return result
        except MCPError as exc:
            if exc.code == POLICY_REFUSED:
                outcome, detail = "refused", exc.message
            else:
                detail = f"JSON-RPC error {exc.code}"
            raise
        except Exception as exc:
            detail = type(exc).__name__
            raise
        finally:
            # The note waits for the writer (up to 500 calls or a second), so it holds plain values
            # only, not the request's params: the garbage collector sets such a tuple aside at its
            # first pass, where the params dicts would be walked by every collection meanwhile.
            user = auth_context_var.get()  # what get_access_token() reads (set by the bearer guard)
            params = ctx.params
            name = params.get("name") if params else None
            arguments = params.get("arguments") if self._arguments_max_bytes is not None and params else None
            note = (_who(user), name, arguments, outcome, detail, started, perf_counter(), self._request_id.get())
            self._record_later(note)

    def refused_for_scope(self, token: Any, tools: list[str], missing: tuple[str, ...]) -> None:
        """The bearer guard answered 403 insufficient_scope: the calls never reached the SDK."""
        for name in tools:
            self._recorder.record(
                AuditEvent(
                    at=self._clock.now(),
                    github_user_id=token.github_user_id,
                    github_login=token.github_login,
                    client_id=token.client_id,
                    client_name=token.client_name,
                    upstream=BUILTIN,
                    tool=name[:TOOL_NAME_LIMIT],
                    outcome="refused",
                    latency_ms=0.0,
                    request_id=self._request_id.get(),
                    detail=f"insufficient_scope: the call needs {' '.join(missing)}",
                )
            )

    def _event(self, note: tuple[Any, ...]) -> AuditEvent:
        """The event of a noted call, made by the audit writer (recorder.py) within a second."""
        who, name, arguments, outcome, detail, started, ended, request_id = note
        github_user_id, github_login, client_id, client_name = who
        if arguments is not None and self._arguments_max_bytes is not None:
            arguments = capped_arguments(arguments, self._arguments_max_bytes)
        # When the call arrived: now, less the time since.
        at = self._clock.now() - (perf_counter() - started)
        tool = name[:TOOL_NAME_LIMIT] if isinstance(name, str) else ""
        latency_ms = (ended - started) * 1000
        detail = None if detail is None else detail[:DETAIL_LIMIT]
        return AuditEvent(
            at, github_user_id, github_login, client_id, client_name, BUILTIN, tool, outcome, latency_ms, request_id, detail, arguments
        )  # fmt: skip


_WHO = "auth_mcp.audit.who"


def _who(user: Any) -> tuple[int, str, str, str | None]:
    """Who called, as the audit row names them, from the context's user: made once per token (kept
    in its `answers`, resource/verifier.py), a tuple of plain values. Whatever the context held (an
    SDK AccessToken without our fields, or nothing), there is an answer: one odd token must not
    cost the batch its other events."""
    token = user.access_token if user is not None else None
    answer = getattr(token, "answer", None)
    return _who_of(token) if answer is None else answer(_WHO, _who_of)


def _who_of(token: Any) -> tuple[int, str, str, str | None]:
    return (
        getattr(token, "github_user_id", 0), getattr(token, "github_login", ""), getattr(token, "client_id", ""),
        getattr(token, "client_name", None),
    )  # fmt: skip
