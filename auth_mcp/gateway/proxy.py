"""The pass-through: MCP over streamable HTTP from an authenticated client to one upstream.

It runs behind the bearer guard, which has verified the client's MCP token for this upstream's
resource, put the caller in `scope["user"]` and removed the token from the request. Then:
- the request goes on with the headers `crossing.py` lets through, the caller's identity token
  (or, by opt-in, their GitHub token) as `Authorization`, and the upstream's own session id;
- the answer comes back as it arrives: SSE streams and GET streams chunk by chunk, never held
  whole; a JSON body (one message) whole, up to `max_response_bytes`;
- when the client goes away, the upstream request is cancelled and its connection closed;
- an upstream that is down, slow or answers garbage gets the client a prompt 502/504 whose
  JSON-RPC error names the upstream and the reason, never a hang or a traceback;
- with a tool gate (tool_gate.py: the upstream's policy and the audit trail), a POST body is
  shown to it before forwarding: a refused tools/call is answered here and never forwarded, one
  that needs more scopes gets the bearer guard's 403 step-up, tools/list answers are cut to what
  the caller may call (a JSON body whole, an SSE stream event by event as it passes), and every
  tools/call ends as one audit event (ok, tool_error, refused or upstream_failure).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.shared.inbound import decode_header_value
from starlette.types import Message, Receive, Scope, Send

from auth_mcp.gateway.client_watch import ClientGone
from auth_mcp.gateway.config import Upstream
from auth_mcp.gateway.crossing import to_client, to_upstream
from auth_mcp.gateway.identity import Caller, IdentityTokens
from auth_mcp.gateway.sessions import SessionSeal
from auth_mcp.gateway.streams import StreamLimit
from auth_mcp.gateway.tool_gate import STEP_UP_KEY, StreamRewriter, ToolExchange, ToolGate
from auth_mcp.gateway.upstream_http import Answer, ConnectTimeout, ReadTimeout, Target, UpstreamError, UpstreamHttp
from auth_mcp.http.access_log import TOOL_KEY
from auth_mcp.http.headers import request_headers

logger = logging.getLogger(__name__)

# The grant's GitHub token, refreshed if needed (for upstreams with forward = "github-token").
GitHubTokenSource = Callable[[str], Awaitable[str]]
RequestId = Callable[[], str]

_METHODS = frozenset({"GET", "POST", "DELETE"})
_SESSION = b"mcp-session-id"
_JSON = b"application/json"
SERVER_ERROR = -32000  # JSON-RPC 2.0 §5.1: implementation-defined server error
PARSE_ERROR = -32700  # JSON-RPC 2.0 §5.1: invalid JSON
_CALLER_KEY = "gateway.caller"


class UpstreamFailure(Exception):
    """The upstream could not give an answer: `status` for the client, `reason` in words."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UpstreamProxy:
    """The ASGI app served at /mcp/NAME, behind the bearer guard."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        target: Target,
        http: UpstreamHttp,
        identity: IdentityTokens,
        sessions: SessionSeal,
        github_tokens: GitHubTokenSource,
        request_id: RequestId,
        gate: ToolGate | None = None,
    ) -> None:
        self._gate = gate
        self._upstream = upstream
        self._name = upstream.name
        self._url = upstream.url
        self._http = http
        self._identity = identity
        self._sessions = sessions
        self._github_tokens = github_tokens
        self._request_id = request_id
        self._target = target
        self._streams = StreamLimit(per_person=upstream.max_streams_per_person)

    @property
    def streams(self) -> StreamLimit:
        return self._streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        user = scope.get("user")
        if method not in _METHODS or user is None:
            # OPTIONS reaches here without credentials (CORS preflights are answered before):
            # nothing unauthenticated is forwarded.
            await _send_json(send, 405, _error(None, "Use GET, POST or DELETE"), [(b"allow", b"GET, POST, DELETE")])
            return
        caller: Caller = user.access_token.answer(_CALLER_KEY, _caller)
        headers = scope["headers"]
        named = request_headers(scope)  # first value by name, built once per request
        session = self._upstream_session(named.get(_SESSION), caller)
        if session is False:
            # Streamable HTTP: an unknown session id gets 404, and the client starts a new session.
            await _send_json(send, 404, _error(None, f"Session not found at upstream {self._name!r}"))
            return
        body = await _read_body(receive, self._upstream.max_request_bytes, named.get(b"content-length"))
        if body is None:
            limit = self._upstream.max_request_bytes
            await _send_json(send, 413, _error(None, f"Request body larger than {limit} bytes for upstream {self._name!r}"))
            return
        if not self._streams.acquire(caller.github_user_id):
            reason = f"too many open requests to upstream {self._name!r} for this person; close some and retry"
            await _send_json(send, 503, _error(_message_id(body), reason), [(b"retry-after", b"1")])
            return
        exchange: ToolExchange | None = None
        failure: UpstreamFailure | None = UpstreamFailure(499, "the client went away before the answer")
        try:
            if self._gate is not None and method == "POST":
                exchange = await self._open_gate(self._gate, scope, receive, send, body, user.access_token)
                if exchange is None or exchange.refusal is not None or exchange.missing_scopes:
                    failure = None  # answered here, never forwarded
                    return
            outbound = await self._outbound_headers(headers, caller, session)
            failure = await self._exchange(method, outbound, body, caller, receive, send, exchange)
        except UpstreamFailure as raised:
            failure = raised
        finally:
            self._streams.release(caller.github_user_id)
            if exchange is not None:
                exchange.end(failure=None if failure is None else f"upstream {self._name!r} {failure.reason}")
        if failure is not None:
            # Only ever raised before anything was sent: the client gets a clear status and reason.
            logger.warning("upstream %s: %s", self._name, failure.reason)
            await _send_json(send, failure.status, _error(_message_id(body), f"upstream {self._name!r} {failure.reason}"))

    async def _open_gate(
        self, gate: ToolGate, scope: Scope, receive: Receive, send: Send, body: bytes, token: Any
    ) -> ToolExchange | None:
        """The policy's decision on this request, answered here when it is a refusal or a step-up;
        None when rules apply and the body cannot be read as one JSON value (answered 400: what
        is not checked is not sent). Without rules such a body passes as it came (the upstream
        answers it), the audit trail then knowing no tool in it."""
        message = _parse(body, strict=gate.restricted) if body else None
        if message is _UNREADABLE and not gate.restricted:
            message = None
        if message is _UNREADABLE:
            await _send_json(send, 400, _error(None, "The request body is not one JSON value (or repeats a key)", PARSE_ERROR))
            return None
        name = request_headers(scope).get(b"mcp-name")
        mcp_name = decode_header_value(name.decode("latin-1")) if name is not None else None
        if name is not None and mcp_name is None:
            mcp_name = _UNDECODABLE  # a header that names no tool names another tool than the body
        exchange = await gate.open(token, message, mcp_name=mcp_name, request_id=self._request_id())
        tool = next((item["params"]["name"] for item in _messages(message) if _is_call(item)), None)
        if tool is not None:
            scope[TOOL_KEY] = tool  # the access log's tool (the bearer guard leaves the body unread)
        if exchange.refusal is not None:
            # A JSON-RPC error for each refused request: HTTP 200, as a tool's own error would be.
            await _send_json(send, 200, exchange.refusal)
        elif exchange.missing_scopes:
            step_up = scope[STEP_UP_KEY]
            await step_up(scope, receive, send, exchange.missing_scopes, tool)
        return exchange

    def _upstream_session(self, sealed: bytes | None, caller: Caller) -> str | bool | None:
        """The upstream's session id for the client's sealed one; None without one; False if refused."""
        if sealed is None:
            return None
        opened = self._sessions.open(sealed.decode("latin-1"), upstream=self._name, person=caller.github_user_id)
        return False if opened is None else opened

    async def _outbound_headers(
        self, headers: list[tuple[bytes, bytes]], caller: Caller, session: str | bool | None
    ) -> list[tuple[bytes, bytes]]:
        outbound = to_upstream(headers)
        if self._upstream.forward == "github-token":
            try:
                credential = await self._github_tokens(caller.grant_id)
            except Exception as exc:  # noqa: BLE001 - any GitHub failure is reported to the client
                raise UpstreamFailure(502, f"could not be given your GitHub token: {exc}") from None
        else:
            credential = self._identity.for_upstream(caller, self._upstream.url)
        outbound.append((b"authorization", b"Bearer " + credential.encode("latin-1")))
        outbound.append((b"accept-encoding", b"identity"))
        outbound.append((b"x-request-id", self._request_id().encode("latin-1")))
        if isinstance(session, str):
            outbound.append((_SESSION, session.encode("latin-1")))
        return outbound

    async def _exchange(
        self,
        method: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        caller: Caller,
        receive: Receive,
        send: Send,
        exchange: ToolExchange | None,
    ) -> UpstreamFailure | None:
        """Send the request and relay the answer; cancelled as soon as the client disconnects
        (then None: nobody is left to answer)."""
        async with ClientGone(receive):
            try:
                answer = await self._send(method, headers, body)
                try:
                    await self._relay(answer, caller, send, exchange)
                    answer.release()  # read to the end: the connection goes back to the pool
                finally:
                    answer.close()  # a no-op after release; otherwise the connection is closed
            except UpstreamFailure as raised:
                return raised
        return None

    async def _send(self, method: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        upstream = self._upstream
        try:
            return await self._http.request(
                self._target,
                method.encode("ascii"),
                headers,
                body,
                connect_timeout=upstream.connect_timeout,
                read_timeout=upstream.read_timeout,
            )
        except (ConnectTimeout, ReadTimeout) as exc:
            raise UpstreamFailure(504, str(exc)) from None
        except UpstreamError as exc:
            raise UpstreamFailure(502, str(exc)) from None
        except ValueError as exc:  # a header that would break the framing (encode_request)
            raise UpstreamFailure(502, f"cannot be sent this request: {exc}") from None

    async def _relay(self, answer: Answer, caller: Caller, send: Send, exchange: ToolExchange | None) -> None:
        if answer.status == 401:
            # The upstream refused our identity token: a configuration mismatch, not the client's
            # credential; a 401 (with the upstream's challenge) would send the client to log in again.
            raise UpstreamFailure(502, "refused auth-mcp's identity token (check its issuer, audience and jwks_uri)")
        headers = to_client(answer.headers)
        if answer.session_id is not None:
            # Bytes as latin-1 text and back: the upstream gets exactly the id it gave.
            sealed = self._sessions.seal(answer.session_id.decode("latin-1"), upstream=self._name, person=caller.github_user_id)
            if sealed is None:
                raise UpstreamFailure(502, "answered with an unusable Mcp-Session-Id")
            headers.append((_SESSION, sealed.encode("ascii")))
        if answer.content_type == _JSON:
            body = await self._whole_body(answer)
            if exchange is not None:
                body = exchange.relay(body)
            headers.append((b"content-length", str(len(body)).encode("ascii")))
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        rewriter = exchange.sse(max_event_bytes=self._upstream.max_response_bytes) if exchange is not None else None
        try:
            await self._stream(answer, send, rewriter)
        except ValueError as exc:  # one event past max_response_bytes: it cannot be examined
            logger.warning("upstream %s: stream ended: %s", self._name, exc)
            answer.close()
        except ReadTimeout:
            logger.info("upstream %s: stream idle for %.0f s, closed", self._name, self._upstream.read_timeout)
            answer.close()
        except UpstreamError as exc:
            logger.warning("upstream %s: stream broke off (%s)", self._name, exc)
            answer.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, answer: Answer, send: Send, rewriter: StreamRewriter | None) -> None:
        """Each chunk as it arrives; through `rewriter` (whole events only) when the policy reads it."""
        while (chunk := await answer.next_chunk()) is not None:
            if rewriter is not None:
                chunk = rewriter.feed(chunk)
                if not chunk:
                    continue
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if rewriter is not None and (rest := rewriter.close()):
            await send({"type": "http.response.body", "body": rest, "more_body": True})

    async def _whole_body(self, answer: Answer) -> bytes:
        limit = self._upstream.max_response_bytes
        try:
            body = await answer.read(limit)
        except ReadTimeout:
            raise UpstreamFailure(504, "stopped sending its answer (read timeout)") from None
        except UpstreamError:
            raise UpstreamFailure(502, "broke off its answer") from None
        if body is None:
            raise UpstreamFailure(502, f"answered more than {limit} bytes")
        return body


def _caller(token: Any) -> Caller:
    return Caller(
        grant_id=token.grant_id,
        github_user_id=token.github_user_id,
        github_login=token.github_login,
        client_id=token.client_id,
        scopes=tuple(token.scopes),
    )


async def _read_body(receive: Receive, limit: int, declared: bytes | None) -> bytes | None:
    """The whole request body, or None past `limit` bytes (refused before reading when declared)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


_UNREADABLE = object()
_UNDECODABLE = "\x00an undecodable Mcp-Name"  # no tool name contains NUL


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a key is repeated")
    return value


# Made once: json.loads with a hook builds a decoder per call, and with bytes it guesses their
# encoding in Python first. MCP messages are UTF-8 (JSON-RPC over HTTP, RFC 8259 §8.1).
_STRICT = json.JSONDecoder(object_pairs_hook=_unique_keys)
_LENIENT = json.JSONDecoder()


def _parse(body: bytes, *, strict: bool) -> Any:
    """The body's JSON value, or `_UNREADABLE`. `strict` (a policy applies) also refuses an object
    that repeats a key: parsers differ on which one wins, and the policy must see what will run."""
    try:
        return (_STRICT if strict else _LENIENT).decode(body.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _UNREADABLE


def _messages(message: Any) -> list[Any]:
    return message if isinstance(message, list) else [message]


def _is_call(item: Any) -> bool:
    if not isinstance(item, dict) or item.get("method") != "tools/call":
        return False
    params = item.get("params")
    return isinstance(params, dict) and isinstance(params.get("name"), str)


def _message_id(body: bytes) -> Any:
    """The JSON-RPC id of a single request, so an error answers it; None otherwise."""
    if not body or len(body) > 64 * 1024:
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict):
        identifier = message.get("id")
        if isinstance(identifier, (str, int)) and not isinstance(identifier, bool):
            return identifier
    return None


def _error(request_id: Any, message: str, code: int = SERVER_ERROR) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode("ascii")),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
