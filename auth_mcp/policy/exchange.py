"""Policy and audit of one request through the gateway, for the proxy of one upstream.

The proxy parses the request body it already holds, and asks before forwarding:

    exchange = await gate.open(caller, message, mcp_name=decoded_mcp_name_header)
    if exchange.refusal is not None:       # answer it (HTTP 200, JSON-RPC error): never forwarded
        ...
    if exchange.missing_scopes:            # answer 403 insufficient_scope naming them (step-up)
        ...
    # forward; then each JSON-RPC message relayed back (a JSON body, or one SSE event's data):
    data = exchange.relay(data)            # tools/list results cut to what the caller may see
    exchange.end(failure=None)             # or failure="why" when the upstream failed us

`end` records one audit event per tools/call of the request: ok, tool_error (the upstream
answered with an error), refused, or upstream_failure (no answer: down, timed out, garbage, or
the client went away first). Messages with no pending request id pass through untouched and
unparsed, so long streams cost nothing here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Protocol

from auth_mcp.audit.events import DETAIL_LIMIT, TOOL_NAME_LIMIT, AuditEvent, Outcome, bounded, capped_arguments
from auth_mcp.audit.recorder import AuditRecorder
from auth_mcp.clock import Clock
from auth_mcp.policy.access import Caller, CallerView, ToolAccess
from auth_mcp.policy.jsonrpc import filter_tools_list, refusal, routing_mismatch, tool_call_name
from auth_mcp.policy.sse import SseRewriter


class AuditedCaller(Caller, Protocol):
    """The caller, as the audit trail names it: `auth_mcp.resource.verifier.McpAccessToken` is one."""

    @property
    def client_id(self) -> str: ...
    @property
    def client_name(self) -> str | None: ...


@dataclass
class _Call:
    name: str
    at: float
    started: float
    arguments: str | None


@dataclass
class Exchange:
    gate: ToolGate
    caller: AuditedCaller
    request_id: str
    view: CallerView | None
    refusal: Any = None  # the JSON-RPC answer to send instead of forwarding
    missing_scopes: tuple[str, ...] = ()
    _calls: dict[Any, _Call] = field(default_factory=dict)  # JSON-RPC id -> pending tools/call
    _listings: set[Any] = field(default_factory=set)  # JSON-RPC ids of pending tools/list requests
    _outcomes: list[tuple[_Call, Outcome, str | None]] = field(default_factory=list)

    def relay(self, data: bytes) -> bytes:
        """One JSON-RPC message (or batch) from the upstream, as it will reach the client."""
        if not self._calls and not self._listings:
            return data
        try:
            # As text when UTF-8 (RFC 8259 §8.1; json.loads guesses the encoding of bytes in Python
            # first), else as bytes: a tools/list in another encoding is filtered all the same.
            message = json.loads(_text(data))
        except (ValueError, RecursionError):
            return data
        messages = message if isinstance(message, list) else [message]
        changed = False
        for index, item in enumerate(messages):
            if not isinstance(item, dict) or "method" in item:
                continue
            key = _key(item.get("id"))
            call = self._calls.pop(key, None)
            if call is not None:
                result = item.get("result")
                failed = "error" in item or (isinstance(result, dict) and result.get("isError") is True)
                self._outcomes.append((call, "tool_error" if failed else "ok", None))
            if key in self._listings and self.view is not None:
                self._listings.discard(key)
                messages[index] = filter_tools_list(item, self.view.visible)
                changed = changed or messages[index] is not item
        if not changed:
            return data
        return json.dumps(messages if isinstance(message, list) else messages[0], ensure_ascii=False).encode()

    def sse(self, *, max_event_bytes: int) -> SseRewriter | None:
        """A rewriter for an event stream answering this request, or None when nothing in it is
        awaited (no tools/call or tools/list): such streams pass byte for byte."""
        if not self._calls and not self._listings:
            return None
        return SseRewriter(self.relay, max_event_bytes=max_event_bytes)

    def end(self, *, failure: str | None = None) -> None:
        """The exchange is over: record every tools/call of it in the audit trail."""
        for call in self._calls.values():
            self._outcomes.append((call, "upstream_failure", failure or "the upstream sent no answer to this call"))
        self._calls.clear()
        for call, outcome, detail in self._outcomes:
            self.gate.record(self, call, outcome, detail)
        self._outcomes.clear()

    def _refuse(self, messages: list[Any], reason: str, *, scopes: tuple[str, ...] = ()) -> None:
        for message in messages:
            name = tool_call_name(message)
            if name is not None:
                call = self.gate.new_call(message, name)
                self._outcomes.append((call, "refused", reason))
        self._calls.clear()
        self._listings.clear()
        if scopes:
            self.missing_scopes = scopes
            return
        answers = [refusal(message, reason) for message in messages if isinstance(message, dict) and "id" in message]
        self.refusal = answers if len(messages) > 1 else (answers[0] if answers else refusal({}, reason))


class ToolGate:
    """The policy and audit trail of one upstream."""

    def __init__(
        self, *, upstream: str, access: ToolAccess, recorder: AuditRecorder, clock: Clock, arguments_max_bytes: int | None = None
    ) -> None:
        self._upstream = upstream
        self._access = access
        self._recorder = recorder
        self._clock = clock
        self._arguments_max_bytes = arguments_max_bytes

    @property
    def restricted(self) -> bool:
        return self._access.restricted

    async def open(self, caller: AuditedCaller, message: Any, *, mcp_name: str | None, request_id: str) -> Exchange:
        """`message` is the parsed request body (one message or a batch); `mcp_name` the decoded Mcp-Name header."""
        messages = message if isinstance(message, list) else [message]
        watched = any(isinstance(item, dict) and item.get("method") in ("tools/call", "tools/list") for item in messages)
        view = await self._access.view(caller) if watched and self._access.restricted else None
        exchange = Exchange(gate=self, caller=caller, request_id=request_id, view=view)
        for item in messages:
            if not isinstance(item, dict) or "id" not in item:
                continue
            name = tool_call_name(item)
            if name is not None:
                exchange._calls[_key(item["id"])] = self.new_call(item, name)
            elif item.get("method") == "tools/list" and view is not None:
                exchange._listings.add(_key(item["id"]))
        mismatch = routing_mismatch(mcp_name, message) if not isinstance(message, list) else None
        if mismatch is not None:
            # The name that is checked, logged and run must be one: refuse a request that names two.
            exchange._refuse(messages, mismatch)
            return exchange
        if view is not None:
            for item in messages:
                name = tool_call_name(item)
                if name is None:
                    continue
                verdict = view.verdict(name)
                if not verdict.allowed:
                    exchange._refuse(messages, verdict.reason)
                    return exchange
                missing = view.missing_scopes(name)
                if missing:
                    exchange._refuse(messages, f"insufficient_scope: the call needs {' '.join(missing)}", scopes=missing)
                    return exchange
        return exchange

    def new_call(self, message: dict[str, Any], name: str) -> _Call:
        arguments = None
        if self._arguments_max_bytes is not None:
            params = message.get("params")
            if isinstance(params, dict) and "arguments" in params:
                arguments = capped_arguments(params["arguments"], self._arguments_max_bytes)
        return _Call(name=name[:TOOL_NAME_LIMIT], at=self._clock.now(), started=perf_counter(), arguments=arguments)

    def record(self, exchange: Exchange, call: _Call, outcome: Outcome, detail: str | None) -> None:
        caller = exchange.caller
        self._recorder.record(
            AuditEvent(
                at=call.at,
                github_user_id=caller.github_user_id,
                github_login=caller.github_login,
                client_id=caller.client_id,
                client_name=caller.client_name,
                upstream=self._upstream,
                tool=call.name,
                outcome=outcome,
                latency_ms=(perf_counter() - call.started) * 1000,
                request_id=exchange.request_id,
                detail=bounded(detail, DETAIL_LIMIT),
                arguments=call.arguments,
            )
        )


def _key(request_id: Any) -> Any:
    """JSON-RPC ids as dictionary keys (a client may send a list or object; those match nothing)."""
    return request_id if isinstance(request_id, (str, int, float)) or request_id is None else json.dumps(request_id)


def _text(data: bytes) -> str | bytes:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data
