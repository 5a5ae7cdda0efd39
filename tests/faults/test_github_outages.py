"""GitHub failing (5xx, timeouts, rate limits) while people use the server: they get errors that
say to retry, and nobody is logged out by an outage (their grant and tokens survive it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auth_mcp.github.devserver import DevGitHub
from tests.support.oauth import call_tool, login, refresh
from tests.support.server import InProcess, in_process

EIGHT_HOURS = 8 * 3600


class GitHubNetwork(httpx.AsyncBaseTransport):
    """The server's network path to the GitHub stand-in (served by the app itself), where a test
    can make the next calls time out."""

    def __init__(self) -> None:
        self.app: Any = None
        self.timeouts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.timeouts:
            self.timeouts -= 1
            raise httpx.ReadTimeout("GitHub did not answer (injected)", request=request)
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


@contextlib.asynccontextmanager
async def serving(db_url: str, **settings: Any) -> AsyncIterator[tuple[InProcess, GitHubNetwork]]:
    """The app in process, reaching its GitHub stand-in over a network path the test controls."""
    network = GitHubNetwork()
    async with (
        httpx.AsyncClient(transport=network) as github_http,
        in_process(database_url=db_url, create={"github_http": github_http}, **settings) as env,
    ):
        network.app = env.app
        yield env, network


def stand_in(env: InProcess) -> DevGitHub:
    assert env.services.dev_github is not None
    return env.services.dev_github


def tool_result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["result"]


@pytest.mark.parametrize("status", ["500", "502", "503"])
async def test_a_github_server_error_in_a_tool_is_a_tool_error_and_the_grant_lives(db_url: str, status: str) -> None:
    async with serving(db_url) as (env, _):
        _, issued = await login(env, login="ana")
        stand_in(env).fail_next("user", status)
        answer = tool_result(await call_tool(env, issued.access_token, "get_user_profile"))
        assert answer["isError"] is True and status in answer["content"][0]["text"]
        assert tool_result(await call_tool(env, issued.access_token, "get_user_profile"))["isError"] is False
        assert len(await env.services.store.list_grants()) == 1


async def test_a_github_timeout_in_a_tool_is_a_tool_error_and_the_grant_lives(db_url: str) -> None:
    async with serving(db_url) as (env, network):
        _, issued = await login(env, login="ben")
        network.timeouts = 1
        answer = tool_result(await call_tool(env, issued.access_token, "get_user_profile"))
        assert answer["isError"] is True and "did not answer in time" in answer["content"][0]["text"]
        assert tool_result(await call_tool(env, issued.access_token, "get_user_profile"))["isError"] is False


async def test_a_github_outage_during_a_needed_token_refresh_keeps_the_grant(db_url: str) -> None:
    async with serving(db_url) as (env, network):
        stand_in(env).options.token_ttl = EIGHT_HOURS
        client, issued = await login(env, login="cleo")
        env.clock.advance(EIGHT_HOURS - 60)  # GitHub's token must be refreshed before use
        renewed = (await refresh(env, client, issued.refresh_token)).json()  # ours is an hour old
        stand_in(env).fail_next("access_token", "502")
        answer = tool_result(await call_tool(env, renewed["access_token"], "get_user_profile"))
        assert answer["isError"] is True
        network.timeouts = 1
        answer = tool_result(await call_tool(env, renewed["access_token"], "get_user_profile"))
        assert answer["isError"] is True and "in time" in answer["content"][0]["text"]
        assert tool_result(await call_tool(env, renewed["access_token"], "get_user_profile"))["isError"] is False
        assert len(await env.services.store.list_grants()) == 1


async def test_a_rate_limited_person_gets_the_retry_time_and_github_is_not_called_again_until_the_reset(db_url: str) -> None:
    async with serving(db_url, access_token_ttl=7200) as (env, _):
        _, issued = await login(env, login="dora", scope="read:user user:email")
        github = stand_in(env)
        github.options.rate_limit = github.rate_limit_used("dora")
        before = len(github.calls)
        for _ in range(4):
            answer = tool_result(await call_tool(env, issued.access_token, "get_user_emails"))
            assert answer["isError"] is True and "retry in" in answer["content"][0]["text"]
        assert len(github.calls) - before <= 1  # the limit was learnt once, then respected
        # The profile read at login is fresh in the ETag cache: it answers without calling GitHub.
        assert tool_result(await call_tool(env, issued.access_token, "get_user_profile"))["isError"] is False
        assert len(github.calls) - before <= 1
        env.clock.advance(3600)  # the stand-in's window resets
        assert tool_result(await call_tool(env, issued.access_token, "get_user_emails"))["isError"] is False
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200


async def test_an_org_check_github_cannot_answer_at_refresh_is_503_and_the_refresh_token_still_works(db_url: str) -> None:
    async with serving(db_url, allowed_orgs="acme") as (env, network):
        stand_in(env).options.orgs = {"eve": ["acme"]}
        client, issued = await login(env, login="eve")
        stand_in(env).fail_next("user/memberships/orgs", "502")
        refused = await refresh(env, client, issued.refresh_token)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "temporarily_unavailable"
        network.timeouts = 1
        assert (await refresh(env, client, issued.refresh_token)).status_code == 503
        renewed = await refresh(env, client, issued.refresh_token)  # GitHub is back
        assert renewed.status_code == 200, renewed.text
        assert (await call_tool(env, renewed.json()["access_token"], "whoami")).status_code == 200
