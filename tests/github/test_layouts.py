"""github.com, GitHub Enterprise Server and GHE.com differ only in their two base URLs."""

from __future__ import annotations

import httpx
import pytest

from auth_mcp.github.devserver import DevGitHub, DevGitHubOptions
from auth_mcp.http.pages import Pages
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.oauth import authorize, call_tool, exchange, new_client
from tests.support.server import IN_PROCESS_URL, in_process


@pytest.mark.parametrize(
    ("web", "api"),
    [
        ("http://github.test", "http://api.github.test"),  # github.com: web and API on two hosts
        ("http://ghes.test", "http://ghes.test/api/v3"),  # GHES: the API under /api/v3
        ("http://corp.ghe.test", "http://api.corp.ghe.test"),  # GHE.com
    ],
)
async def test_a_login_and_a_tool_call_work_with_each_layout(db_url: str, web: str, api: str) -> None:
    clock = FakeClock()
    github = DevGitHub(
        options=DevGitHubOptions(client_id="app", client_secret="secret", callback_url=f"{IN_PROCESS_URL}/github/callback"),
        signing_key="k" * 40,
        pages=Pages(server_name="github"),
        clock=clock,
    )
    stand_in = httpx.ASGITransport(app=github.app)
    settings = {"github_client_id": "app", "github_client_secret": "secret", "github_url": web, "github_api_url": api}
    create = {"github_http": httpx.AsyncClient(mounts={web: stand_in, api: stand_in})}
    async with in_process(database_url=db_url, clock=clock, create=create, **settings) as env:
        client = await new_client(env)
        browser = Browser(
            login="mona",
            http=httpx.AsyncClient(mounts={web: stand_in, IN_PROCESS_URL: httpx.ASGITransport(app=env.app)}),
        )
        env.browsers.append(browser)
        outcome, verifier = await authorize(env, client, browser=browser)
        assert any(url.startswith(f"{web}/login/oauth/authorize?") for url in browser.visited)
        tokens = (await exchange(env, client, outcome["code"], verifier)).json()
        profile = (await call_tool(env, tokens["access_token"], "get_user_profile")).json()["result"]
        assert profile["structuredContent"]["login"] == "mona"
