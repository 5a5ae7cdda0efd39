"""Auditing the built-in tools (at /mcp): an MCP SDK `ServerMiddleware` around every tools/call.

Outermost of our middleware, so it also sees calls the policy refuses. It never keeps a tool
error's text: the SDK's argument-validation errors quote the values the caller sent.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from auth_mcp.audit.events import TOOL_NAME_LIMIT, AuditEvent, Outcome, bounded, capped_arguments
from auth_mcp.audit.recorder import AuditRecorder
from auth_mcp.clock import Clock
from auth_mcp.policy.jsonrpc import POLICY_REFUSED

BUILTIN = "builtin"


class BuiltinToolAudit:
    def __init__(
        self, *, recorder: AuditRecorder, clock: Clock, request_id: Any, arguments_max_bytes: int | None = None
    ) -> None:
        """`request_id` is the access log's context variable; `arguments_max_bytes` None keeps no arguments."""
        self._recorder = recorder
        self._clock = clock
        self._request_id = request_id
        self._arguments_max_bytes = arguments_max_bytes

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        at = self._clock.now()
        started = perf_counter()
        outcome: Outcome = "tool_error"
        detail: str | None = None
        try:
            result = await call_next(ctx)
            if isinstance(result, dict) and result.get("isError"):
                outcome = "tool_error"
            else:
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
            self._record(ctx, at=at, latency=perf_counter() - started, outcome=outcome, detail=detail)

    def _record(self, ctx: ServerRequestContext[Any, Any], *, at: float, latency: float, outcome: Outcome, detail: str | None) -> None:
        token = get_access_token()
        params = ctx.params or {}
        name = params.get("name")
        arguments = None
        if self._arguments_max_bytes is not None and "arguments" in params:
            arguments = capped_arguments(params["arguments"], self._arguments_max_bytes)
        self._recorder.record(
            AuditEvent(
                at=at,
                github_user_id=getattr(token, "github_user_id", 0),
                github_login=getattr(token, "github_login", ""),
                client_id=token.client_id if token is not None else "",
                client_name=getattr(token, "client_name", None),
                upstream=BUILTIN,
                tool=name[:TOOL_NAME_LIMIT] if isinstance(name, str) else "",
                outcome=outcome,
                latency_ms=latency * 1000,
                request_id=self._request_id.get(),
                detail=bounded(detail, 500),
                arguments=arguments,
            )
        )
