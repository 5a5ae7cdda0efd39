"""The MCP tools over HTTP: what they return, the scopes they need, and GitHub's bad days."""

from __future__ import annotations

from typing import Any

import httpx

from auth_mcp.github.devserver import DevGitHub, user_id_for
from auth_mcp.tools.kit import SCOPES_META_KEY
from tests.support.oauth import authorize, call_tool, exchange, login, mcp_call, refresh
from tests.support.server import InProcess, in_process


def stand_in(env: InProcess) -> DevGitHub:
    assert env.services.dev_github is not None
    return env.services.dev_github


def result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def test_tools_list_says_which_scope_each_tool_needs(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        headers, body = mcp_call("x")
        body.update(method="tools/list", params={"_meta": body["params"]["_meta"]})
        headers["Mcp-Method"] = "tools/list"
        del headers["Mcp-Name"]
        response = await env.http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {issued.access_token}"})
        tools = {tool["name"]: tool for tool in result(response)["tools"]}
        assert set(tools) == {"get_user_profile", "whoami", "get_user_emails", "list_user_orgs"}
        assert tools["get_user_emails"]["_meta"][SCOPES_META_KEY] == ["user:email"]
        assert "user:email" in tools["get_user_emails"]["description"]
        assert tools["list_user_orgs"]["_meta"][SCOPES_META_KEY] == ["read:org"]
        assert tools["get_user_profile"]["_meta"][SCOPES_META_KEY] == ["read:user"]


async def test_the_profile_is_githubs_user_with_githubs_field_names(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="octocat")
        profile = result(await call_tool(env, issued.access_token, "get_user_profile"))["structuredContent"]
        assert profile["login"] == "octocat" and profile["id"] == user_id_for("octocat")
        assert {"name", "avatar_url", "html_url", "public_repos", "created_at"} <= set(profile)


async def test_a_repeated_profile_read_is_answered_304_and_does_not_spend_the_rate_limit(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="octocat")
        # The login itself read /user with this token: every later read is conditional.
        spent = stand_in(env).rate_limit_used("octocat")
        reads = stand_in(env).calls.count(("GET", "/user"))
        first = result(await call_tool(env, issued.access_token, "get_user_profile"))
        for _ in range(3):
            assert result(await call_tool(env, issued.access_token, "get_user_profile")) == first
        assert stand_in(env).calls.count(("GET", "/user")) == reads + 4
        assert stand_in(env).rate_limit_used("octocat") == spent


async def test_two_people_reading_their_profiles_in_turn_each_get_their_own(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, alice = await login(env, login="alice")
        _, bob = await login(env, login="bob")
        for _ in range(3):  # the first read of each is GitHub's 200, the others 304s
            for person, issued in (("alice", alice), ("bob", bob)):
                profile = result(await call_tool(env, issued.access_token, "get_user_profile"))["structuredContent"]
                assert (profile["login"], profile["id"]) == (person, user_id_for(person))
        assert stand_in(env).rate_limit_used("alice") == stand_in(env).rate_limit_used("bob")


async def test_emails_need_user_email_and_flag_primary_and_verified(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="erin", scope="read:user user:email")
        emails = result(await call_tool(env, issued.access_token, "get_user_emails"))["structuredContent"]["emails"]
        primary = [e for e in emails if e["primary"]]
        assert len(primary) == 1 and primary[0]["verified"] and primary[0]["email"] == "erin@example.com"
        assert any(not e["verified"] for e in emails)


async def test_organizations_need_read_org(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        stand_in(env).options.orgs = {"frank": ["acme", "globex"]}
        _, issued = await login(env, login="frank", scope="read:user read:org")
        orgs = result(await call_tool(env, issued.access_token, "list_user_orgs"))["structuredContent"]["organizations"]
        assert [o["login"] for o in orgs] == ["acme", "globex"]


async def test_step_up_a_new_authorization_with_the_wider_scope_yields_a_token_that_can_call_the_tool(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, narrow = await login(env, login="gina")
        refused = await call_tool(env, narrow.access_token, "get_user_emails")
        assert refused.status_code == 403
        needed = refused.headers["www-authenticate"].split('scope="')[1].split('"')[0]
        browser = env.browser(login="gina")
        outcome, verifier = await authorize(env, client, browser=browser, scope=f"read:user {needed}")
        github_page = next(url for url in browser.visited if "/login/oauth/authorize" in url)
        assert "user%3Aemail" in github_page  # we asked GitHub for exactly the wider scope
        wide = (await exchange(env, client, outcome["code"], verifier)).json()
        assert wide["scope"] == "read:user user:email"
        assert result(await call_tool(env, wide["access_token"], "get_user_emails"))["isError"] is False


async def test_a_github_rate_limit_becomes_a_tool_error_that_says_when_to_retry(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="hana", scope="read:user user:email")
        stand_in(env).options.rate_limit = stand_in(env).rate_limit_used("hana")
        answer = result(await call_tool(env, issued.access_token, "get_user_emails"))
        assert answer["isError"] is True
        text = answer["content"][0]["text"]
        assert "rate limit" in text and "retry in" in text
        # The grant survives a rate limit.
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200


async def test_when_github_revokes_the_app_the_tool_says_sign_in_again_and_the_token_dies(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="ivan")
        stand_in(env).revoke_all("ivan")
        answer = result(await call_tool(env, issued.access_token, "get_user_profile"))
        assert answer["isError"] is True and "Sign in again" in answer["content"][0]["text"]
        after = await call_tool(env, issued.access_token, "whoami")
        assert after.status_code == 401 and 'error="invalid_token"' in after.headers["www-authenticate"]
        assert await env.services.store.list_grants() == []


async def test_githubs_per_app_token_limit_evicting_a_token_kills_that_grant_only(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        # Each sign-in through its own client: a repeated sign-in of one client ends the older grant itself.
        _, oldest = await login(env, login="judy")
        for _ in range(10):  # GitHub keeps 10 tokens per user, app and scope
            _, newest = await login(env, login="judy")
        assert result(await call_tool(env, oldest.access_token, "get_user_profile"))["isError"] is True
        assert (await call_tool(env, oldest.access_token, "whoami")).status_code == 401
        assert result(await call_tool(env, newest.access_token, "get_user_profile"))["isError"] is False


async def test_a_github_outage_during_a_tool_call_is_a_tool_error_not_a_dead_grant(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="kim")
        stand_in(env).fail_next("user", "502")
        answer = result(await call_tool(env, issued.access_token, "get_user_profile"))
        assert answer["isError"] is True and "502" in answer["content"][0]["text"]
        assert result(await call_tool(env, issued.access_token, "get_user_profile"))["isError"] is False


async def test_after_a_step_up_the_person_holds_one_live_grant_per_client_and_the_new_one_refreshes(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, narrow = await login(env, login="gina")
        _, other_client = await login(env, login="gina")  # another client of the same person
        browser = env.browser(login="gina")
        outcome, verifier = await authorize(env, client, browser=browser, scope="read:user user:email")
        wide = (await exchange(env, client, outcome["code"], verifier)).json()
        grants = [g for g in await env.services.store.list_grants() if g.client_id == client.client_id]
        assert [g.scopes for g in grants] == [("read:user", "user:email")]
        # The older grant's tokens are over; the new pair works and refreshes.
        assert (await call_tool(env, narrow.access_token, "whoami")).status_code == 401
        assert (await refresh(env, client, narrow.refresh_token)).json()["error"] == "invalid_grant"
        refreshed = await refresh(env, client, wide["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        assert (await call_tool(env, refreshed.json()["access_token"], "whoami")).status_code == 200
        # Another client of the same person is not touched.
        assert (await call_tool(env, other_client.access_token, "whoami")).status_code == 200


async def test_a_narrower_authorization_of_the_same_client_leaves_the_wider_grant_alone(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, wide = await login(env, login="gina", scope="read:user user:email")
        _, narrow = await login(env, client, login="gina", scope="read:user")
        assert (await call_tool(env, wide.access_token, "whoami")).status_code == 200
        assert (await call_tool(env, narrow.access_token, "whoami")).status_code == 200
