"""The policy of the built-in tools (at /mcp), enforced inside the MCP SDK's server.

An SDK `ServerMiddleware` sees each request after the transport checked it (for 2026-07-28
requests the SDK has already refused an `Mcp-Name` header that disagrees with the body), with
the tool name the handler will run. tools/list results are cut to what the caller may call; a
refused tools/call raises a JSON-RPC error before the tool runs. The scopes a rule adds are
checked earlier, at the HTTP layer (bearer.py), so a missing one gets 403 `insufficient_scope`
and the client can step up. Installed only when `[[builtin.tools]]` rules exist: without them
the tool calls pay nothing.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from auth_mcp.policy.access import Caller, ToolAccess
from auth_mcp.policy.jsonrpc import POLICY_REFUSED


class BuiltinToolPolicy:
    def __init__(self, access: ToolAccess) -> None:
        self._access = access

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        method = ctx.method
        if method != "tools/call" and method != "tools/list":
            return await call_next(ctx)
        caller: Caller | None = get_access_token()  # type: ignore[assignment]
        if caller is None or not hasattr(caller, "grant_id"):
            raise MCPError(code=POLICY_REFUSED, message="Refused: this server's tools need an authenticated caller")
        view = await self._access.view(caller)
        if method == "tools/call":
            params = ctx.params or {}
            name = params.get("name")
            verdict = view.verdict(name if isinstance(name, str) else "")
            if not verdict.allowed:
                raise MCPError(
                    code=POLICY_REFUSED, message=f"Refused: {verdict.reason}", data={"tool": name, "reason": verdict.reason}
                )
            return await call_next(ctx)
        result = await call_next(ctx)
        tools = result.get("tools") if isinstance(result, dict) else None
        if isinstance(tools, list):
            kept = [tool for tool in tools if isinstance(tool, dict) and view.visible(str(tool.get("name")))]
            return {**result, "tools": kept}  # type: ignore[dict-item]
        return result
