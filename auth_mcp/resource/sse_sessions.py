"""The deprecated HTTP+SSE transport's sessions, bound to the grant that opened them.

The SDK binds an SSE session to its principal (client id, issuer, subject): any other grant of
the same person through the same client could post into it, and nothing closes a stream when
its grant is revoked, so a revoked grant kept receiving results. Here, in front of the SDK's
SSE app and behind the bearer check:
- `GET /sse` is counted per grant and per client address and refused with 429 beyond
  `max_per_grant` / `max_per_address` streams;
- the session id the SDK announces in its first event is recorded with the opening grant, and a
  `POST /messages/?session_id=...` from any other grant is answered exactly like an unknown
  session (404), so a session id reveals nothing to another grant;
- `close_grant` ends every stream of a grant: its request sees the client disconnect, which
  is how the SDK's transport ends a session. Revocation in this process calls it directly;
  `grant_changed` (revocation notices from other replicas, which also report rotations)
  closes the streams only when the grant is really gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_mcp.resource.verifier import McpAccessToken

logger = logging.getLogger(__name__)

MAX_STREAMS_PER_GRANT = 4
MAX_STREAMS_PER_ADDRESS = 32
_SESSION_ID = re.compile(rb"session_id=([0-9a-f]{32})")

GrantExists = Callable[[str], Awaitable[bool]]
"""grant id -> whether the grant still exists (a revocation notice may be a rotation)."""


@dataclass(eq=False)
class _Stream:
    grant_id: str
    address: str
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    session_id: str | None = None


class SseSessions:
    """The SSE streams of this process, by grant; `guard(app)` puts them in front of the SDK's
    SSE app (see the module docstring)."""

    def __init__(
        self,
        *,
        grant_exists: GrantExists,
        sse_path: str = "/sse",
        message_path: str = "/messages/",
        max_per_grant: int = MAX_STREAMS_PER_GRANT,
        max_per_address: int = MAX_STREAMS_PER_ADDRESS,
    ) -> None:
        self._grant_exists = grant_exists
        self._sse_path = sse_path
        self._message_path = message_path
        self._max_per_grant = max_per_grant
        self._max_per_address = max_per_address
        self._by_grant: dict[str, set[_Stream]] = {}
        self._by_address: dict[str, int] = {}
        self._by_session: dict[str, _Stream] = {}
        self._checks: set[asyncio.Task[None]] = set()

    def streams(self, grant_id: str) -> int:
        """How many streams the grant has open in this process."""
        return len(self._by_grant.get(grant_id, ()))

    def close_grant(self, grant_id: str) -> None:
        """End every stream the grant opened (it was revoked)."""
        for stream in self._by_grant.get(grant_id, set()):
            stream.closed.set()

    def grant_changed(self, grant_id: str) -> None:
        """A notice that the grant was revoked or rotated: close its streams if it is gone."""
        if grant_id not in self._by_grant:
            return
        task = asyncio.get_running_loop().create_task(self._close_if_gone(grant_id))
        # Kept until done: the event loop holds only weak references to tasks.
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _close_if_gone(self, grant_id: str) -> None:
        try:
            exists = await self._grant_exists(grant_id)
        except Exception:  # noqa: BLE001 - the store is unreachable: keep the stream, log why
            logger.warning("could not check whether grant %s still exists; its SSE streams stay open", grant_id[:8])
            return
        if not exists:
            self.close_grant(grant_id)

    def guard(self, app: ASGIApp) -> ASGIApp:
        """`app` (the SDK's SSE app, behind the bearer check) with streams counted and bound."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            token = _token(scope)
            if token is None or scope["type"] != "http":
                await app(scope, receive, send)
            elif scope["path"] == self._sse_path and scope["method"] == "GET":
                await self._stream(app, scope, receive, send, token.grant_id)
            elif scope["path"] == self._message_path and scope["method"] == "POST":
                owner = self._by_session.get(_session_param(scope))
                if owner is not None and owner.grant_id != token.grant_id:
                    # As the SDK answers an unknown session: another grant learns nothing about it.
                    await _plain(send, 404, b"Could not find session")
                    return
                await app(scope, receive, send)
            else:
                await app(scope, receive, send)

        return guarded

    async def _stream(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, grant_id: str) -> None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if self.streams(grant_id) >= self._max_per_grant:
            await _too_many(send, f"this authorization already has {self._max_per_grant} open streams; close one first")
            return
        if self._by_address.get(address, 0) >= self._max_per_address:
            await _too_many(send, f"this address already has {self._max_per_address} open streams; close one first")
            return
        stream = _Stream(grant_id=grant_id, address=address)
        self._by_grant.setdefault(grant_id, set()).add(stream)
        self._by_address[address] = self._by_address.get(address, 0) + 1

        response = {"started": False, "finished": False}

        async def announce(message: Message) -> None:
            if message["type"] == "http.response.start":
                if response["started"]:
                    return  # the SDK's endpoint answering again after the stream it served ended
                response["started"] = True
            elif message["type"] == "http.response.body":
                if response["finished"]:
                    return
                response["finished"] = not message.get("more_body", False)
                if stream.session_id is None:
                    found = _SESSION_ID.search(message.get("body", b""))
                    if found is not None:
                        stream.session_id = found.group(1).decode()
                        self._by_session[stream.session_id] = stream
            await send(message)

        try:
            await app(scope, _until_closed(receive, stream.closed), announce)
        finally:
            self._forget(stream)
        if stream.closed.is_set() and response["started"] and not response["finished"]:
            # We ended it, not the client: end the response, so the client sees the stream close.
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _forget(self, stream: _Stream) -> None:
        members = self._by_grant.get(stream.grant_id)
        if members is not None:
            members.discard(stream)
            if not members:
                del self._by_grant[stream.grant_id]
        remaining = self._by_address.get(stream.address, 1) - 1
        if remaining:
            self._by_address[stream.address] = remaining
        else:
            self._by_address.pop(stream.address, None)
        if stream.session_id is not None:
            self._by_session.pop(stream.session_id, None)


def _until_closed(receive: Receive, closed: asyncio.Event) -> Receive:
    """`receive`, except that it reports a client disconnect once `closed` is set."""

    async def receive_until_closed() -> Message:
        if closed.is_set():
            return {"type": "http.disconnect"}
        message = asyncio.ensure_future(receive())
        closing = asyncio.ensure_future(closed.wait())
        done, _ = await asyncio.wait({message, closing}, return_when=asyncio.FIRST_COMPLETED)
        if message in done:
            closing.cancel()
            return message.result()
        message.cancel()
        return {"type": "http.disconnect"}

    return receive_until_closed


def _token(scope: Scope) -> McpAccessToken | None:
    user = scope.get("user")
    token = getattr(user, "access_token", None)
    return token if isinstance(token, McpAccessToken) else None


def _session_param(scope: Scope) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id", [""])
    return values[0].replace("-", "").lower()


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _too_many(send: Send, description: str) -> None:
    body = json.dumps({"error": "temporarily_unavailable", "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"60"),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
