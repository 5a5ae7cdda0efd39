"""Run the real app on a loopback port inside the test's event loop (uvicorn), so the SDK's
clients talk to it over real HTTP, streaming included."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from auth_mcp.app import Services, create_app
from auth_mcp.settings import Settings

_START_TIMEOUT = 10.0


@dataclass
class RunningServer:
    url: str
    port: int
    app: Starlette
    settings: Settings

    @property
    def services(self) -> Services:
        return self.app.state.services

    @property
    def mcp_url(self) -> str:
        return self.url + ("/mcp" if self.settings.transport == "streamable-http" else "/sse")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def run_server(*, port: int | None = None, create: dict[str, Any] | None = None, **settings: Any) -> AsyncIterator[RunningServer]:
    """Serve `create_app(Settings(**settings), **create)` on 127.0.0.1 until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or 0))
    port = sock.getsockname()[1]
    settings.setdefault("server_url", f"http://127.0.0.1:{port}")
    config = Settings(_env_file=None, port=port, **settings)  # type: ignore[call-arg]
    app = create_app(config, **(create or {}))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield RunningServer(url=config.issuer, port=port, app=app, settings=config)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
