"""/github/callback: finishing the login, and every way it can go wrong."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from auth_mcp.github.devserver import user_id_for
from tests.support.browser import Browser
from tests.support.oauth import Client, authorize, authorize_url, exchange, new_client, pkce, query
from tests.support.server import IN_PROCESS_URL, InProcess, in_process

GITHUB = f"{IN_PROCESS_URL}/_dev/github"


def stand_in(env: InProcess) -> Any:
    github = env.services.dev_github
    assert github is not None
    return github


async def grants(env: InProcess) -> int:
    return len(await env.services.store.list_grants())


async def approved_github_url(env: InProcess, browser: Browser, client: Client) -> str:
    """Approve consent in `browser` and stop before GitHub: the URL of GitHub's login page."""
    _, challenge = pkce()
    browser.stop_before = GITHUB
    url = await browser.go(authorize_url(env, client, challenge), until="never://")
    browser.stop_before = None
    assert url.startswith(GITHUB), url
    return url


async def test_a_github_link_approved_in_one_browser_cannot_be_finished_in_another(db_url: str) -> None:
    # Confused deputy: the attacker approves their own client, then hands the GitHub link to a victim.
    async with in_process(database_url=db_url) as env:
        attacker_client = await new_client(env, name="Totally Legit")
        github_link = await approved_github_url(env, env.browser(), attacker_client)
        victim = env.browser(login="victim")
        with pytest.raises(AssertionError, match="HTTP 403"):
            await victim.go(github_link, until=attacker_client.redirect_uri)
        assert await grants(env) == 0


async def test_a_callback_without_this_browsers_approval_is_refused(db_url: str) -> None:
    # Login CSRF: a callback URL crafted elsewhere, opened by a victim's browser.
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        attacker = env.browser(login="attacker")
        github_link = await approved_github_url(env, attacker, client)
        # The attacker completes GitHub's step but does not follow the callback...
        login_page = await attacker.http.get(github_link)
        assert login_page.status_code == 200
        hidden = dict(query(github_link))
        response = await attacker.http.post(github_link.split("?")[0], data={**hidden, "login": "attacker", "decision": "authorize"})
        callback = response.headers["location"]
        # ...and plants it in the victim's browser.
        victim = env.client()
        response = await victim.get(callback)
        assert response.status_code == 403
        assert "not approved in this browser" in response.text
        assert await grants(env) == 0


async def test_a_replayed_callback_is_refused_as_already_used(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        browser = env.browser()
        callback_url: list[str] = []
        browser.stop_before = f"{IN_PROCESS_URL}/github/callback"
        _, challenge = pkce()
        callback = await browser.go(authorize_url(env, client, challenge), until="never://")
        callback_url.append(callback)
        cookies = dict(browser.http.cookies)
        first = await browser.http.get(callback)
        assert first.status_code == 302 and "code=" in first.headers["location"]
        replay = env.client(cookies=cookies)
        second = await replay.get(callback)
        assert second.status_code == 400 and "already used" in second.text
        assert await grants(env) == 1


async def test_a_state_older_than_ten_minutes_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        browser = env.browser()
        browser.stop_before = f"{IN_PROCESS_URL}/github/callback"
        _, challenge = pkce()
        callback = await browser.go(authorize_url(env, client, challenge), until="never://")
        env.clock.advance(601)
        response = await browser.http.get(callback)
        # The signed cookie outlived its max age as well: either way, no login.
        assert response.status_code in (400, 403)
        assert await grants(env) == 0


async def test_a_callback_without_state_or_with_a_forged_one_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await env.http.get("/github/callback?code=abc")
        assert response.status_code == 400 and "without the state" in response.text
        response = await env.http.get("/github/callback?code=abc&state=forged")
        assert response.status_code == 403


async def test_github_denial_reaches_the_client_with_its_state_and_our_iss(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, _ = await authorize(env, client, browser=env.browser(github="cancel"), state="s-123")
        assert result["error"] == "access_denied"
        assert result["state"] == "s-123" and result["iss"] == IN_PROCESS_URL
        assert await grants(env) == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [("502", "temporarily_unavailable"), ("503", "temporarily_unavailable"), ("error:bad_verification_code", "server_error")],
)
async def test_a_failing_github_token_endpoint_reaches_the_client_as_an_oauth_error(db_url: str, fault: str, error: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        stand_in(env).fail_next("access_token", fault)
        result, _ = await authorize(env, client, state="s-9")
        assert result["error"] == error and result["state"] == "s-9" and result["iss"] == IN_PROCESS_URL
        assert await grants(env) == 0


class _TimeoutOn(httpx.AsyncBaseTransport):
    """GitHub at the HTTP edge: the stand-in, except that one path never answers in time."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.app: ASGIApp | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(self.suffix):
            raise httpx.ReadTimeout("GitHub is slow", request=request)
        assert self.app is not None
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


async def test_a_github_timeout_reaches_the_client_as_temporarily_unavailable(db_url: str) -> None:
    transport = _TimeoutOn("/login/oauth/access_token")
    async with in_process(database_url=db_url, create={"github_http": httpx.AsyncClient(transport=transport)}) as env:
        transport.app = env.app
        client = await new_client(env)
        result, _ = await authorize(env, client)
        assert result["error"] == "temporarily_unavailable" and "iss" in result


async def test_when_github_cannot_say_who_logged_in_the_fresh_token_is_revoked(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        stand_in(env).fail_next("user", "500")
        result, _ = await authorize(env, client)
        assert result["error"] == "temporarily_unavailable"
        assert ("DELETE", "/applications/auth-mcp-dev/token") in stand_in(env).calls
        assert await grants(env) == 0


async def test_two_people_through_one_client_get_their_own_grants(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        for login in ("alice", "bob"):
            result, verifier = await authorize(env, client, browser=env.browser(login=login))
            assert (await exchange(env, client, result["code"], verifier)).status_code == 200
        people = {(g.github_login, g.github_user_id) for g in await env.services.store.list_grants()}
        assert people == {("alice", user_id_for("alice")), ("bob", user_id_for("bob"))}


# Who may get in ---------------------------------------------------------------------------------------


async def test_only_allowed_users_get_in_by_login_or_numeric_id(db_url: str) -> None:
    async with in_process(database_url=db_url, allowed_users=f"Alice,{user_id_for('carol')}") as env:
        client = await new_client(env)
        for login, allowed in (("alice", True), ("carol", True), ("bob", False)):
            result, _ = await authorize(env, client, browser=env.browser(login=login), state=login)
            assert ("code" in result) is allowed, (login, result)
            if not allowed:
                assert result["error"] == "access_denied" and result["state"] == login
                assert "bob" in result["error_description"] and "not in this server's list" in result["error_description"]
        assert {g.github_login for g in await env.services.store.list_grants()} == {"alice", "carol"}


async def test_members_of_an_allowed_org_get_in_and_read_org_is_asked_only_then(db_url: str) -> None:
    async with in_process(database_url=db_url, allowed_orgs="acme") as env:
        stand_in(env).options.orgs = {"alice": ["acme"], "bob": ["globex"]}
        client = await new_client(env)
        browser = env.browser(login="alice")
        result, _ = await authorize(env, client, browser=browser)
        assert "code" in result
        github_page = next(url for url in browser.visited if url.startswith(GITHUB))
        assert query(github_page)["scope"] == "read:user read:org"
        result, _ = await authorize(env, client, browser=env.browser(login="bob"))
        assert result["error"] == "access_denied" and "not an active member of acme" in result["error_description"]
        assert ("DELETE", "/applications/auth-mcp-dev/token") in stand_in(env).calls
    async with in_process(database_url=db_url) as env:
        browser = env.browser(login="alice")
        await authorize(env, await new_client(env), browser=browser)
        github_page = next(url for url in browser.visited if url.startswith(GITHUB))
        assert query(github_page)["scope"] == "read:user"


async def test_membership_hidden_by_saml_sso_fails_closed_and_says_why(db_url: str) -> None:
    async with in_process(database_url=db_url, allowed_orgs="secure-corp") as env:
        stand_in(env).options.orgs = {"alice": ["secure-corp"]}
        stand_in(env).options.sso_orgs = {"secure-corp"}
        result, _ = await authorize(env, await new_client(env), browser=env.browser(login="alice"))
        assert result["error"] == "access_denied"
        assert "SAML single sign-on" in result["error_description"]
        assert await grants(env) == 0


async def test_an_unexpected_github_answer_during_the_org_check_fails_closed_and_revokes_the_token(db_url: str) -> None:
    async with in_process(database_url=db_url, allowed_orgs="acme") as env:
        stand_in(env).options.orgs = {"alice": ["acme"]}
        stand_in(env).fail_next("user/memberships/orgs", "422")
        result, _ = await authorize(env, await new_client(env), browser=env.browser(login="alice"), state="s-1")
        assert result["error"] == "access_denied" and result["state"] == "s-1" and result["iss"] == IN_PROCESS_URL
        assert ("DELETE", "/applications/auth-mcp-dev/token") in stand_in(env).calls
        assert await grants(env) == 0
