"""What the proxy asks of the per-tool policy and the audit trail, per request (`ToolGate`).

The gateway imports no policy code (the policy asks GitHub about memberships): the wiring gives
each proxy a gate (`auth_mcp.policy.exchange.ToolGate` is one) and the bearer guard leaves its
step-up answer in the request's scope (`STEP_UP_KEY`), so a call that needs more scopes gets the
same 403 `insufficient_scope` challenge as a built-in tool's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from auth_mcp.http.refusals import STEP_UP_KEY

__all__ = ["STEP_UP_KEY", "StepUp", "StreamRewriter", "ToolExchange", "ToolGate"]

StepUp = Callable[[Scope, Receive, Send, tuple[str, ...], "str | None"], Awaitable[None]]


class StreamRewriter(Protocol):
    """Rewrites an event stream as it passes; `feed` raises ValueError past its per-event limit."""

    def feed(self, chunk: bytes) -> bytes: ...
    def close(self) -> bytes: ...


class ToolExchange(Protocol):
    """One request's policy decision and audit record."""

    @property
    def refusal(self) -> Any: ...  # the JSON-RPC answer to send instead of forwarding, or None
    @property
    def missing_scopes(self) -> tuple[str, ...]: ...  # answer 403 insufficient_scope naming them

    def relay(self, data: bytes) -> bytes: ...  # one JSON body from the upstream, as the client gets it
    def sse(self, *, max_event_bytes: int) -> StreamRewriter | None: ...  # None: pass the stream untouched
    def end(self, *, failure: str | None = None) -> None: ...  # record the request's tool calls


class ToolGate(Protocol):
    @property
    def restricted(self) -> bool: ...  # rules exist: parse strictly, filter, refuse

    async def open(self, caller: Any, message: Any, *, mcp_name: str | None, request_id: str) -> ToolExchange: ...
