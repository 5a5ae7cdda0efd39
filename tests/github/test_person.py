"""GitHub as one person: expiring tokens, refresh (serialised across server instances), dead grants."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from auth_mcp.github.devserver import DevGitHub, DevGitHubOptions
from auth_mcp.github.person import LEASE_SECONDS, REFRESH_AHEAD, PersonGitHub
from auth_mcp.http.pages import Pages
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.oauth import Client, authorize, call_tool, exchange, login, new_client, refresh
from tests.support.server import IN_PROCESS_URL, InProcess, in_process

EIGHT_HOURS = 8 * 3600


def stand_in(env: InProcess) -> DevGitHub:
    assert env.services.dev_github is not None
    return env.services.dev_github


async def profile_ok(env: InProcess, token: str) -> bool:
    response = await call_tool(env, token, "get_user_profile")
    assert response.status_code == 200, response.text
    return response.json()["result"]["isError"] is False


async def test_an_expiring_github_token_is_refreshed_shortly_before_it_expires(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = EIGHT_HOURS
        _, issued = await login(env, login="lena")
        before = (await env.services.store.list_grants())[0].github
        assert before.token_expires_at == int(env.clock.now()) + EIGHT_HOURS and before.refresh_token_enc
        env.clock.advance(EIGHT_HOURS - 120)  # inside the refresh window, not yet expired
        tokens = await login_refresh_keeping_mcp_token_alive(env, issued)
        assert await profile_ok(env, tokens)
        after = (await env.services.store.list_grants())[0].github
        assert after.token_enc != before.token_enc and after.refresh_token_enc != before.refresh_token_enc
        assert after.token_expires_at == int(env.clock.now()) + EIGHT_HOURS


async def login_refresh_keeping_mcp_token_alive(env: InProcess, issued: Any) -> str:
    """Our access token lives an hour; GitHub's eight. Refresh ours (independently of GitHub's)."""
    client_id = (await env.services.store.list_grants())[0].client_id
    response = await refresh(env, Client(client_id=client_id, redirect_uri=""), issued.refresh_token)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def test_a_401_with_a_refresh_token_is_cured_by_one_refresh(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = EIGHT_HOURS
        _, issued = await login(env, login="mona")
        grant = (await env.services.store.list_grants())[0]
        # GitHub drops the access token early (but not the refresh token).
        await env.services.github.revoke_token(env.services.keyring.decrypt(grant.github.token_enc))
        assert await profile_ok(env, issued.access_token)
        assert len(await env.services.store.list_grants()) == 1


async def test_a_token_refreshed_by_another_process_is_picked_up_when_github_refuses_the_old_one(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = EIGHT_HOURS
        _, issued = await login(env, login="rosa")
        assert await profile_ok(env, issued.access_token)  # this token's calls now know the grant
        grant = (await env.services.store.list_grants())[0]
        # Another process finds GitHub's token dead and refreshes it, which kills the old one.
        services = env.services
        await services.github.revoke_token(services.keyring.decrypt(grant.github.token_enc))
        other = PersonGitHub(grant_id=grant.grant_id, store=services.store, keyring=services.keyring,
                             github=services.github, revoker=services.revoker, clock=env.clock)  # fmt: skip
        assert (await other.get("/user"))["login"] == "rosa"
        refreshed = (await services.store.list_grants())[0].github
        assert refreshed.token_enc != grant.github.token_enc
        refreshes = stand_in(env).calls.count(("POST", "/login/oauth/access_token"))
        # The same MCP token: GitHub refuses the token it used before; it takes up the new one.
        assert await profile_ok(env, issued.access_token)
        assert stand_in(env).calls.count(("POST", "/login/oauth/access_token")) == refreshes  # no second refresh
        assert (await services.store.list_grants())[0].github == refreshed


async def test_the_same_mcp_token_refreshes_githubs_token_when_it_comes_due(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = REFRESH_AHEAD + 10  # due for a refresh 10 seconds after login
        _, issued = await login(env, login="sara")
        assert await profile_ok(env, issued.access_token)
        before = (await env.services.store.list_grants())[0].github
        env.clock.advance(15)  # within the token verifier's cache: the same verified token, the same grant read
        assert await profile_ok(env, issued.access_token)
        after = (await env.services.store.list_grants())[0].github
        assert after.token_enc != before.token_enc and after.token_expires_at == int(env.clock.now()) + REFRESH_AHEAD + 10


async def test_a_refresh_github_refuses_kills_the_grant(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = EIGHT_HOURS
        _, issued = await login(env, login="nina")
        stand_in(env).revoke_all("nina")  # the person revoked the app: the refresh token dies too
        answer = (await call_tool(env, issued.access_token, "get_user_profile")).json()["result"]
        assert answer["isError"] is True and "Sign in again" in answer["content"][0]["text"]
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 401


async def test_our_tokens_lifetime_does_not_follow_githubs(db_url: str) -> None:
    # GitHub's token expires in 8 hours; ours in one; our refresh token in 30 days.
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = EIGHT_HOURS
        _, issued = await login(env)
        assert issued.expires_in == 3600


@contextlib.asynccontextmanager
async def two_instances(db_url: str, github: DevGitHub, clock: FakeClock) -> AsyncIterator[tuple[InProcess, InProcess]]:
    """Two server instances (own caches, own connection pools) on one database and one GitHub."""
    github_mode: dict[str, Any] = {
        "github_client_id": github.options.client_id,
        "github_client_secret": github.options.client_secret,
        "github_url": "http://github.test",
        "github_api_url": "http://github.test/api/v3",
        "secret_key": "s" * 40,
        "access_token_ttl": 12 * 3600,  # outlive GitHub's 8-hour token in this test
    }

    def http() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=github.app))

    async with (
        in_process(database_url=db_url, clock=clock, create={"github_http": http()}, **github_mode) as a,
        in_process(database_url=db_url, clock=clock, create={"github_http": http()}, **github_mode) as b,
    ):
        yield a, b


def github_browser(env: InProcess, github: DevGitHub, login: str) -> Browser:
    client = httpx.AsyncClient(
        mounts={
            "http://github.test": httpx.ASGITransport(app=github.app),
            IN_PROCESS_URL: httpx.ASGITransport(app=env.app),
        },
        follow_redirects=False,
    )
    browser = Browser(login=login, http=client)
    env.browsers.append(browser)
    return browser


async def test_concurrent_refreshes_from_two_instances_on_one_database_refresh_once(any_db_url: str) -> None:
    clock = FakeClock()
    github = DevGitHub(
        options=DevGitHubOptions(
            client_id="app", client_secret="app-secret", callback_url=f"{IN_PROCESS_URL}/github/callback", token_ttl=EIGHT_HOURS
        ),
        signing_key="k" * 40,
        pages=Pages(server_name="github"),
        clock=clock,
    )
    async with two_instances(any_db_url, github, clock) as (a, b):
        client = await new_client(a)
        outcome, verifier = await authorize(a, client, browser=github_browser(a, github, "olga"))
        tokens = (await exchange(a, client, outcome["code"], verifier)).json()
        github_tokens_before = github.calls.count(("POST", "/login/oauth/access_token"))
        clock.advance(EIGHT_HOURS - 60)
        calls = [call_tool(env, tokens["access_token"], "get_user_profile") for env in (a, b, a, b, a, b)]
        responses = await asyncio.gather(*calls)
        assert all(r.status_code == 200 and r.json()["result"]["isError"] is False for r in responses), [r.text for r in responses]
        # GitHub's refresh tokens are single use: exactly one instance refreshed.
        assert github.calls.count(("POST", "/login/oauth/access_token")) == github_tokens_before + 1
        assert len(await a.services.store.list_grants()) == 1


async def test_leaving_the_allowed_org_ends_access_at_the_next_refresh(db_url: str) -> None:
    async with in_process(database_url=db_url, allowed_orgs="acme") as env:
        stand_in(env).options.orgs = {"pat": ["acme"]}
        client, issued = await login(env, login="pat")
        still_member = await refresh(env, client, issued.refresh_token)
        assert still_member.status_code == 200
        stand_in(env).options.orgs = {"pat": []}
        removed = await refresh(env, client, still_member.json()["refresh_token"])
        assert removed.status_code == 400
        assert removed.json()["error"] == "invalid_grant" and "acme" in removed.json()["error_description"]
        assert await env.services.store.list_grants() == []


async def test_a_refresh_lease_left_by_a_dead_process_is_taken_over_when_it_expires_on_the_injected_clock(
    db_url: str,
) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.token_ttl = EIGHT_HOURS
        _, issued = await login(env, login="olga")
        env.clock.advance(EIGHT_HOURS - 120)  # GitHub's token is due for a refresh
        token = await login_refresh_keeping_mcp_token_alive(env, issued)
        grant = (await env.services.store.list_grants())[0]
        # Another replica took the refresh lease and died before releasing it.
        lease_until = int(env.clock.now()) + LEASE_SECONDS
        assert await env.services.store.acquire_refresh_lease(grant.grant_id, until=lease_until)
        assert await profile_ok(env, token)
        # The wait passed on the test's clock (no real sleeping), and lasted until the lease expired.
        assert env.clock.now() >= lease_until
        after = (await env.services.store.list_grants())[0].github
        assert after.token_enc != grant.github.token_enc
