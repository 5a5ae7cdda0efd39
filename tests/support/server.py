"""Run the real app: on a loopback port inside the test's event loop (uvicorn), so the SDK's
clients talk to it over real HTTP, streaming included; or in process through httpx's ASGI
transport with its lifespan entered, for fast HTTP-level tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from auth_mcp.app import Services, create_app
from auth_mcp.cli import server_config
from auth_mcp.settings import Settings
from tests.support.browser import Browser
from tests.support.clock import FakeClock

_START_TIMEOUT = 10.0
IN_PROCESS_URL = "http://127.0.0.1:8000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(**settings: Any) -> Settings:
    # Rate limits would trip on the hundreds of requests one test makes from one address;
    # tests/test_rate_limit.py turns them back on.
    settings.setdefault("rate_limit_per_minute", 0)
    return Settings(_env_file=None, **settings)  # type: ignore[call-arg]


@dataclass
class RunningServer:
    url: str
    port: int
    app: Starlette
    settings: Settings
    clock: FakeClock | None = None

    @property
    def services(self) -> Services:
        return self.app.state.services

    @property
    def mcp_url(self) -> str:
        return self.url + ("/mcp" if self.settings.transport == "streamable-http" else "/sse")


@contextlib.asynccontextmanager
async def run_server(
    *, port: int | None = None, clock: FakeClock | None = None, create: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[RunningServer]:
    """Serve `create_app(Settings(**settings))` on 127.0.0.1 until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or 0))
    port = sock.getsockname()[1]
    settings.setdefault("server_url", f"http://127.0.0.1:{port}")
    config = _settings(port=port, **settings)
    app = create_app(config, clock=clock, **(create or {}))
    server = uvicorn.Server(server_config(app, config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield RunningServer(url=config.issuer, port=port, app=app, settings=config, clock=clock)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@dataclass
class InProcess:
    app: Starlette
    settings: Settings
    clock: FakeClock
    http: httpx.AsyncClient
    browsers: list[Browser] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def services(self) -> Services:
        return self.app.state.services

    @property
    def mcp_url(self) -> str:
        return self.issuer + ("/mcp" if self.settings.transport == "streamable-http" else "/sse")

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """Another user agent (own cookie jar) talking to the same app."""
        kwargs.setdefault("follow_redirects", False)
        kwargs.setdefault("base_url", self.issuer)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), **kwargs)

    def browser(self, **kwargs: Any) -> Browser:
        browser = Browser(http=self.client(), **kwargs)
        self.browsers.append(browser)
        return browser


@contextlib.asynccontextmanager
async def in_process(*, clock: FakeClock | None = None, create: dict[str, Any] | None = None, **settings: Any) -> AsyncIterator[InProcess]:
    """The app with its lifespan entered, reached through httpx's ASGI transport."""
    settings.setdefault("server_url", IN_PROCESS_URL)
    config = _settings(**settings)
    clock = clock or FakeClock()
    app = create_app(config, clock=clock, **(create or {}))
    async with app.router.lifespan_context(app):
        env = InProcess(app=app, settings=config, clock=clock, http=None)  # type: ignore[arg-type]
        env.http = env.client()
        try:
            yield env
        finally:
            await env.http.aclose()
            for browser in env.browsers:
                await browser.aclose()
