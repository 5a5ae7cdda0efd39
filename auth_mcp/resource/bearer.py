"""The resource server's door: every request to the MCP endpoints carries a valid bearer token.

RFC 6750 and MCP basic/authorization:
- the token comes only from the `Authorization: Bearer` header (§2.1), never a query string;
- a missing, invalid, expired, revoked or foreign-audience token gets 401 with a challenge
  naming `resource_metadata` (RFC 9728 §5.1) and the `scope` to ask for;
- a `tools/call` whose tool needs a scope the token lacks gets 403 `insufficient_scope`
  naming every scope that call needs, in one challenge, so the client can step up;
- an address whose unknown tokens used up its failure budget gets 429 with `Retry-After` for
  tokens that would need a database query (RFC 6585 §4).
On success the SDK's `AuthenticatedUser` is put in the ASGI scope and its context variable,
which is how tools learn who is calling (`mcp.server.auth.middleware.auth_context`), and the
person's GitHub login and id and the tool called go in the scope for the access log
(`PERSON_KEY`, `PERSON_ID_KEY`, `TOOL_KEY`; a gateway upstream has no tool scopes here, so its
proxy reads the body and names the tool). A refused token (not a missing one: that is how
every client starts) and a missing scope are logged once each (http/refusals.py).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.inbound import decode_header_value
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_mcp.http.access_log import PERSON_ID_KEY, PERSON_KEY, TOOL_KEY
from auth_mcp.http.headers import BoundedMemo, remove_header, request_headers
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.rate_limit import FailureBudget, too_many_requests
from auth_mcp.http.refusals import STEP_UP_KEY, log_refusal
from auth_mcp.resource.audience import Audience
from auth_mcp.resource.verifier import CachedVerifier, McpAccessToken, Verified

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024  # the SDK transport's own limit
_VERIFIED_KEY = "auth_mcp.verified"  # the verified token, handed to the body check through the scope


def www_authenticate(**params: str | None) -> str:
    """One builder for challenges: quoted-string values with `\\` and `"` escaped (RFC 9110 §5.6.4)."""
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{name}="{escaped}"')
    return "Bearer " + ", ".join(parts) if parts else "Bearer"


class BearerGuard:
    """Wraps the MCP endpoint's ASGI app (app.py applies it to /mcp, or /sse and /messages/)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: CachedVerifier,
        audience: Audience,
        resource_metadata_url: str,
        default_scopes: Sequence[str],
        tool_scopes: Mapping[str, Sequence[str]],
        metrics: Metrics,
        trust_routing_headers: bool,
        failures: FailureBudget | None = None,
        required_scopes: Sequence[str] = (),
        offer_step_up: bool = False,
        on_insufficient_scope: Callable[[McpAccessToken, list[str], tuple[str, ...]], None] | None = None,
    ) -> None:
        """`on_insufficient_scope(token, tool names, missing scopes)` hears of each call refused
        with 403 (the audit trail records it). With `offer_step_up` the app behind can give the
        same 403 for scopes it finds missing (scope[STEP_UP_KEY]: a gateway upstream's policy)."""
        self._offer_step_up = offer_step_up
        # Unknown tokens per client address (http/rate_limit.py): None when rate limits are off.
        self._failures = failures
        self._on_insufficient_scope = on_insufficient_scope
        # Only the streamable HTTP transport checks Mcp-Method / Mcp-Name against the body (SSE does not).
        self._trust_routing_headers = trust_routing_headers
        self._metrics = metrics
        self._app = app
        self._verifier = verifier
        self._audience = audience
        self._resource_metadata_url = resource_metadata_url
        self._default_scope = " ".join(default_scopes)
        self._tool_scopes = {name: tuple(scopes) for name, scopes in tool_scopes.items()}
        self._check_body = RequestBodyLimitMiddleware(self._check_body_within_limit, MAX_BODY)
        # Scopes every request needs (a gateway upstream's); a tool may need more.
        self._required_scopes = tuple(required_scopes)
        self._required_set = frozenset(required_scopes)
        # (Mcp-Method, Mcp-Name) as sent -> (tool, scopes it needs): a stranger's ever new names are not kept.
        self._calls: BoundedMemo[tuple[bytes | None, bytes | None], tuple[str | None, tuple[str, ...]]] = BoundedMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self._app(scope, receive, send)
            return
        headers = request_headers(scope)
        token = _bearer_token(headers.get(b"authorization"))
        if token is None:
            # RFC 6750 §3.1: no error code when the request carried no credentials at all.
            self._metrics.tokens_refused.labels("missing").inc()
            await self._refuse(scope, receive, send, 401, error=None, description="Authentication required")
            return
        verified = self._verifier.fresh(token)
        if verified is None:
            # Not cached: verifying may cost a database query, which unknown tokens pay for.
            if self._failures is not None and await self._over_budget(self._failures, scope, receive, send, token):
                return
            verified = await self._verifier.verify(token)
        if verified is None:
            if self._failures is not None:
                self._failures.spend(scope)
            self._metrics.tokens_refused.labels("invalid").inc()
            description = "The access token is invalid, expired or revoked"
            log_refusal(endpoint=scope["path"], status=401, error="invalid_token", description=description)
            await self._refuse(scope, receive, send, 401, error="invalid_token", description=description)
            return
        access = verified.token
        if access.resource is None or not self._audience.accepts(access.resource):
            # RFC 8707 / MCP: only tokens issued for this server are accepted.
            self._metrics.tokens_refused.labels("audience").inc()
            description = "The access token was issued for another resource"
            _log_refusal_of(access, scope, 401, "invalid_token", description)
            await self._refuse(scope, receive, send, 401, error="invalid_token", description=description)
            return
        scope[PERSON_KEY] = access.github_login
        scope[PERSON_ID_KEY] = access.github_user_id
        if not verified.scopes.issuperset(self._required_set):
            # A gateway upstream's scopes, needed by every request to it (logged like a tool's).
            await self._refuse_scope(scope, receive, send, self._required_scopes, verified, None)
            return
        if scope["method"] == "POST":
            if self._trust_routing_headers and _is_modern(headers.get(b"mcp-protocol-version")):
                # 2026-07-28 requests name their method and tool in headers, and the SDK refuses
                # any request whose headers disagree with its body (HeaderMismatch, 400) before a
                # handler runs (comparing the decoded Mcp-Name, so we decode it the same way); so the
                # headers are what will run, without reading the body here.
                routing = (headers.get(b"mcp-method"), headers.get(b"mcp-name"))
                call = self._calls.get(routing)
                if call is None:
                    call = self._call_of(*routing)
                tool, needed = call
                if tool is not None:
                    scope[TOOL_KEY] = tool
                missing = None if verified.scopes.issuperset(needed) else needed
            elif self._tool_scopes:
                # Older protocols name the tool only in the body: read it (bounded, 413 past the
                # transport's own limit) and check scopes there.
                scope[_VERIFIED_KEY] = verified
                await self._check_body(scope, receive, send)
                return
            else:
                # No tools here (a gateway upstream: its proxy reads the body for its policy and
                # names the tool for the access log): nothing to read.
                missing = None
            if missing is not None:
                await self._refuse_scope(scope, receive, send, missing, verified, tool)
                return
        reset = self._admit(scope, verified, headers)
        try:
            await self._app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)

    def _admit(
        self, scope: Scope, verified: Verified, headers: dict[bytes, bytes]
    ) -> contextvars.Token[AuthenticatedUser | None]:
        """Hands the request to the app behind as the token's user; returns the token that resets
        the SDK's context variable once the app is done (the caller's `finally`)."""
        scope["user"] = verified.user
        scope["auth"] = verified.credentials
        if self._offer_step_up:

            async def step_up(scope: Scope, receive: Receive, send: Send, missing: tuple[str, ...], tool: str | None) -> None:
                await self._refuse_scope(scope, receive, send, missing, verified, tool)

            scope[STEP_UP_KEY] = step_up
        # Past this point identity travels as scope["user"]: the transport, its logs and the tools
        # (which can read the HTTP request) never see the bearer token itself. It also spares the
        # SDK one header in each of its several passes over them.
        remove_header(scope, b"authorization", headers)
        return auth_context_var.set(verified.user)

    async def _over_budget(self, failures: FailureBudget, scope: Scope, receive: Receive, send: Send, token: str) -> bool:
        """429 if this address's unknown tokens have cost enough queries and this token would
        need one too (a valid token already cached passes: it costs nothing)."""
        wait = failures.exhausted(scope)
        if wait <= 0 or self._verifier.knows(token):
            return False
        self._metrics.tokens_refused.labels("failure_budget").inc()
        response = too_many_requests(wait)
        description = "Too many unknown tokens from this address"
        log_refusal(endpoint=scope["path"], status=429, error="temporarily_unavailable", description=description)
        await response(scope, receive, send)
        return True

    async def _check_body_within_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Behind RequestBodyLimitMiddleware (`_check_body`): the whole body is the first message."""
        verified: Verified = scope.pop(_VERIFIED_KEY)
        first = await receive()
        body = first.get("body", b"") if first["type"] == "http.request" else b""
        missing, tool = self._missing_scopes(body, verified.scopes)
        if tool is not None:
            scope[TOOL_KEY] = tool
        if missing is not None:
            await self._refuse_scope(scope, receive, send, missing, verified, tool)
            return
        reset = self._admit(scope, verified, request_headers(scope))
        try:
            await self._app(scope, _replay(first, receive), send)
        finally:
            auth_context_var.reset(reset)

    async def _refuse_scope(
        self, scope: Scope, receive: Receive, send: Send, missing: tuple[str, ...], verified: Verified, tool: str | None
    ) -> None:
        self._metrics.tokens_refused.labels("insufficient_scope").inc()
        description = f"This call needs the scope {' '.join(missing)}"
        access = verified.token
        if self._on_insufficient_scope is not None:
            self._on_insufficient_scope(access, [tool] if tool is not None else [], missing)
        _log_refusal_of(access, scope, 403, "insufficient_scope", description, tool=tool)
        await self._refuse(
            scope, receive, send, 403, error="insufficient_scope", description=description, scope_value=" ".join(missing)
        )

    def _call_of(self, method: bytes | None, name: bytes | None) -> tuple[str | None, tuple[str, ...]]:
        """The tool a 2026-07-28 request's Mcp-Method and Mcp-Name headers call, and the scopes it
        needs; remembered per pair of header values (clients call the same few tools), bounded."""
        text = _text(method)
        tool = decode_header_value(_text(name)) if text == "tools/call" else None
        return self._calls.keep((method, name), (tool, self._needed_for(text, tool)), len(method or b"") + len(name or b""))

    def _needed_for(self, method: str | None, name: str | None) -> tuple[str, ...]:
        if method != "tools/call" or name is None:
            return ()
        return self._tool_scopes.get(name, ())

    def _missing_scopes(self, body: bytes, granted: frozenset[str]) -> tuple[tuple[str, ...] | None, str | None]:
        """The scopes a tools/call needs, if the token lacks any of them (all of them, in one
        list), and the (first) tool called."""
        try:
            message: Any = json.loads(body)
        except (ValueError, RecursionError):
            return None, None  # the transport answers malformed JSON itself
        messages = message if isinstance(message, list) else [message]
        needed: list[str] = []
        tool = None
        for item in messages:
            if not isinstance(item, dict):
                continue
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            name = name if isinstance(name, str) else None
            if tool is None and item.get("method") == "tools/call":
                tool = name
            needed.extend(self._needed_for(item.get("method"), name))
        required = tuple(dict.fromkeys(needed))
        if all(scope in granted for scope in required):
            return None, tool
        return required, tool

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        *,
        error: str | None,
        description: str,
        scope_value: str | None = None,
    ) -> None:
        challenge = www_authenticate(
            error=error,
            error_description=description,
            scope=scope_value or self._default_scope,
            resource_metadata=self._resource_metadata_url,
        )
        body = {"error": error or "invalid_token", "error_description": description}
        headers = {"www-authenticate": challenge, "cache-control": "no-store"}
        await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


_HANDSHAKE_VERSIONS = frozenset(version.encode() for version in HANDSHAKE_PROTOCOL_VERSIONS)


def _is_modern(protocol_version: bytes | None) -> bool:
    """The SDK's own routing rule: such a request takes its per-request (header-checked) path."""
    return protocol_version is not None and protocol_version not in _HANDSHAKE_VERSIONS


def _log_refusal_of(
    access: McpAccessToken, scope: Scope, status: int, error: str, description: str, tool: str | None = None
) -> None:
    """The refusal's log line, naming the client and the person the verified token belongs to."""
    log_refusal(
        endpoint=scope["path"],
        status=status,
        error=error,
        description=description,
        client_id=access.client_id,
        person=access.github_login,
        person_id=access.github_user_id,
        tool=tool,
    )


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _bearer_token(authorization: bytes | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _replay(first: Message, receive: Receive) -> Receive:
    """`receive` with `first` given back once more, for the app behind the check that read it."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
