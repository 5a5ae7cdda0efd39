"""The policy and audit trail of the built-in tools at /mcp, over HTTP through the whole app."""

from __future__ import annotations

from pathlib import Path

from auth_mcp.github.devserver import DevGitHub
from auth_mcp.policy.jsonrpc import POLICY_REFUSED
from auth_mcp.storage.audit import AuditQuery
from tests.support.oauth import call_tool, login, mcp_call, refresh
from tests.support.server import InProcess, in_process

POLICY = """
[upstreams.placeholder]
url = "http://127.0.0.1:9/mcp"

[[builtin.tools]]
match = "whoami"

[[builtin.tools]]
match = "list_user_orgs"
orgs = ["acme"]

[[builtin.tools]]
match = "get_user_emails"
teams = ["acme/platform"]
"""


def gateway_file(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


ALL_SCOPES = "read:user user:email read:org"  # so that the tools' own scopes are not what refuses


def stand_in(env: InProcess) -> DevGitHub:
    assert env.services.dev_github is not None
    return env.services.dev_github


async def listed(env: InProcess, token: str) -> list[str]:
    headers, body = mcp_call("x")
    body.update(method="tools/list", params={"_meta": body["params"]["_meta"]})
    headers["Mcp-Method"] = "tools/list"
    del headers["Mcp-Name"]
    response = await env.http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return sorted(tool["name"] for tool in response.json()["result"]["tools"])


async def audited(env: InProcess) -> list[tuple[str, str, str]]:
    await env.services.audit.recorder.flush()
    events = await env.services.audit.store.find(AuditQuery())
    return [(event.github_login, event.tool, event.outcome) for event in reversed(events)]


async def test_without_rules_every_tool_is_listed_and_each_call_is_audited(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="octocat")
        assert await listed(env, issued.access_token) == ["get_user_emails", "get_user_profile", "list_user_orgs", "whoami"]
        response = await call_tool(env, issued.access_token, "whoami")
        assert response.status_code == 200 and response.json()["result"]["isError"] is False
        assert await audited(env) == [("octocat", "whoami", "ok")]


async def test_a_caller_outside_the_organisation_sees_and_can_call_nothing_protected(db_url: str, tmp_path: Path) -> None:
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path)) as env:
        stand_in(env).options.orgs = {"alice": ["acme"]}
        stand_in(env).options.teams = {"alice": ["acme/platform"]}
        _, outsider = await login(env, login="mallory", scope=ALL_SCOPES)
        _, member = await login(env, login="alice", scope=ALL_SCOPES)
        assert await listed(env, outsider.access_token) == ["whoami"]
        assert await listed(env, member.access_token) == ["get_user_emails", "list_user_orgs", "whoami"]
        refused = await call_tool(env, outsider.access_token, "list_user_orgs")
        assert refused.status_code == 200
        error = refused.json()["error"]
        assert error["code"] == POLICY_REFUSED and "mallory" in error["message"]
        assert (await call_tool(env, member.access_token, "list_user_orgs")).json()["result"]["isError"] is False
        # get_user_profile matches no rule: nobody may call it.
        assert (await call_tool(env, member.access_token, "get_user_profile")).json()["error"]["code"] == POLICY_REFUSED
        assert await audited(env) == [
            ("mallory", "list_user_orgs", "refused"),
            ("alice", "list_user_orgs", "ok"),
            ("alice", "get_user_profile", "refused"),
        ]


async def test_the_login_asks_github_for_read_org_when_a_rule_names_an_organisation(db_url: str, tmp_path: Path) -> None:
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path)) as env:
        await login(env, login="alice")  # the client asks for read:user only
        [grant] = await env.services.store.list_grants()
        assert "read:org" in grant.github.scopes


async def test_membership_github_hides_fails_closed_and_the_refusal_says_why(db_url: str, tmp_path: Path) -> None:
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path)) as env:
        stand_in(env).options.orgs = {"alice": ["acme"]}
        stand_in(env).options.sso_orgs = {"acme"}
        _, issued = await login(env, login="alice", scope=ALL_SCOPES)
        error = (await call_tool(env, issued.access_token, "list_user_orgs")).json()["error"]
        assert error["code"] == POLICY_REFUSED and "SAML" in error["data"]["reason"]


async def test_leaving_the_organisation_ends_access_within_one_access_token_lifetime(db_url: str, tmp_path: Path) -> None:
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path), access_token_ttl=600) as env:
        stand_in(env).options.orgs = {"alice": ["acme"]}
        client, issued = await login(env, login="alice", scope=ALL_SCOPES)
        assert "list_user_orgs" in await listed(env, issued.access_token)
        stand_in(env).options.orgs = {"alice": []}
        env.clock.advance(599)
        assert "list_user_orgs" in await listed(env, issued.access_token)  # the answer is kept ...
        env.clock.advance(1)
        # ... for one access-token lifetime; the same grant's next token sees the new answer.
        response = await refresh(env, client, issued.refresh_token)
        assert response.status_code == 200, response.text
        assert "list_user_orgs" not in await listed(env, response.json()["access_token"])


async def test_a_client_naming_an_allowed_tool_in_mcp_name_but_another_in_the_body_is_refused(db_url: str, tmp_path: Path) -> None:
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path)) as env:
        _, outsider = await login(env, login="mallory", scope=ALL_SCOPES)
        headers, body = mcp_call("list_user_orgs")
        headers["Mcp-Name"] = "whoami"  # the header names what mallory may call
        response = await env.http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {outsider.access_token}"})
        assert response.status_code == 400 or response.json()["error"]["code"] == POLICY_REFUSED
        # Whatever refused it, list_user_orgs did not run for mallory.
        assert all(outcome != "ok" for _, tool, outcome in await audited(env) if tool == "list_user_orgs")


async def test_a_rule_s_scope_is_asked_for_with_a_step_up(db_url: str, tmp_path: Path) -> None:
    text = '[[builtin.tools]]\nmatch = "whoami"\nscopes = ["user:email"]\n'
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path, text)) as env:
        _, issued = await login(env, login="alice")
        response = await call_tool(env, issued.access_token, "whoami")
        assert response.status_code == 403
        assert 'scope="read:user user:email"' in response.headers["www-authenticate"]
        # Refused before the SDK saw it, and still in the audit trail.
        assert await audited(env) == [("alice", "whoami", "refused")]


async def test_a_policy_mistake_stops_start_up_naming_the_line(db_url: str, tmp_path: Path) -> None:
    from auth_mcp.app import create_app
    from auth_mcp.settings import Settings

    path = gateway_file(tmp_path, '[[builtin.tools]]\nmatch = "*"\nteams = ["platform"]\n')
    settings = Settings(_env_file=None, database_url=db_url, gateway_config=path)  # type: ignore[call-arg]
    try:
        create_app(settings)
    except ValueError as exc:
        assert f"{path}, line 3:" in str(exc) and "ORGANIZATION/TEAM-SLUG" in str(exc)
    else:
        raise AssertionError("start-up went on with a broken policy")


async def test_arguments_are_audited_only_when_opted_in(db_url: str) -> None:
    async with in_process(database_url=db_url, audit_arguments=True, audit_arguments_max_bytes=64) as env:
        _, issued = await login(env, login="alice", scope=ALL_SCOPES)
        await call_tool(env, issued.access_token, "whoami", {"ignored": "x" * 200})
        await env.services.audit.recorder.flush()
        [event] = await env.services.audit.store.find(AuditQuery())
        assert event.arguments is not None and event.arguments.endswith("…(truncated)")


async def test_a_github_outage_refuses_for_now_without_being_remembered(db_url: str, tmp_path: Path) -> None:
    async with in_process(database_url=db_url, gateway_config=gateway_file(tmp_path)) as env:
        stand_in(env).options.orgs = {"alice": ["acme"]}
        _, issued = await login(env, login="alice", scope=ALL_SCOPES)
        stand_in(env).fail_next("user/memberships/orgs", "503")
        error = (await call_tool(env, issued.access_token, "list_user_orgs")).json()["error"]
        assert error["code"] == POLICY_REFUSED and "GitHub could not be asked" in error["data"]["reason"]
        # The next call asks again, and GitHub answers this time.
        assert (await call_tool(env, issued.access_token, "list_user_orgs")).json()["result"]["isError"] is False
