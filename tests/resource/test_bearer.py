"""The resource server's door: /mcp only for valid tokens issued by and for this server."""

from __future__ import annotations

import asyncio

from mcp.server.mcpserver import Context

from auth_mcp import tokens
from auth_mcp.storage.records import CodeRecord, GitHubCredentials, Grant, TokenPair
from auth_mcp.tools.kit import caller
from tests.support.oauth import call_tool, login, mcp_call, new_client
from tests.support.server import IN_PROCESS_URL, in_process

PRM = f"{IN_PROCESS_URL}/.well-known/oauth-protected-resource/mcp"


def challenge(response: object) -> str:
    return response.headers["www-authenticate"]  # type: ignore[attr-defined]


async def test_a_request_without_a_token_gets_a_challenge_naming_metadata_and_scope(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await call_tool(env, None, "whoami")
        assert response.status_code == 401
        value = challenge(response)
        assert value.startswith("Bearer ")
        assert f'resource_metadata="{PRM}"' in value and 'scope="read:user"' in value
        assert "error=" not in value  # RFC 6750 §3.1: no error code without credentials


async def test_an_unknown_token_is_an_invalid_token(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await call_tool(env, "amcp_at_made-up", "whoami")
        assert response.status_code == 401 and 'error="invalid_token"' in challenge(response)


async def test_tokens_are_taken_only_from_the_authorization_header(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        headers, body = mcp_call("whoami")
        response = await env.http.post(f"/mcp?access_token={issued.access_token}", json=body, headers=headers)
        assert response.status_code == 401
        response = await env.http.post("/mcp", json=body, headers={**headers, "Authorization": f"Basic {issued.access_token}"})
        assert response.status_code == 401


async def test_a_github_token_is_never_accepted_as_a_bearer(db_url: str) -> None:
    # Token passthrough: the person's GitHub token (or any GitHub token) is not ours.
    async with in_process(database_url=db_url) as env:
        await login(env)
        grant = (await env.services.store.list_grants())[0]
        github_token = env.services.keyring.decrypt(grant.github.token_enc)
        assert github_token.startswith("gho_")
        assert (await call_tool(env, github_token, "whoami")).status_code == 401


async def test_a_token_issued_for_another_resource_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        store = env.services.store
        now = int(env.clock.now())
        grant = Grant(
            grant_id="g-other",
            client_id="c",
            client_name=None,
            github_user_id=1,
            github_login="alice",
            scopes=("read:user",),
            resource="https://other.example/mcp",
            github=GitHubCredentials(token_enc=env.services.keyring.encrypt("gho_x"), token_expires_at=None, refresh_token_enc=None, refresh_expires_at=None, scopes=()),
            created_at=now,
            expires_at=now + 600,
        )
        code = CodeRecord("h" * 64, "g-other", "c", "http://127.0.0.1:1/cb", True, "ch", ("read:user",), "https://other.example/mcp", now + 300, None)
        await store.add_grant_with_code(grant, code)
        access = tokens.new_access_token()
        pair = TokenPair(tokens.token_hash(access), now + 3600, tokens.token_hash("r"), now + 7200, ("read:user",), "https://other.example/mcp")
        assert await store.consume_code("h" * 64, pair, client_id="c")
        response = await call_tool(env, access, "whoami")
        assert response.status_code == 401 and "another resource" in response.json()["error_description"]


async def test_an_expired_token_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url, access_token_ttl=600) as env:
        _, issued = await login(env)
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        env.clock.advance(601)
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 401


async def test_a_tool_needing_a_scope_the_token_lacks_gets_403_insufficient_scope(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        response = await call_tool(env, issued.access_token, "get_user_emails")
        assert response.status_code == 403
        value = challenge(response)
        assert 'error="insufficient_scope"' in value and 'scope="user:email"' in value
        assert f'resource_metadata="{PRM}"' in value


async def test_verifying_a_token_never_calls_github(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        github = env.services.dev_github
        assert github is not None
        before = len(github.calls)
        for _ in range(5):
            assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        assert len(github.calls) == before


async def test_two_people_on_one_client_each_see_only_themselves_also_concurrently(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        people = {}
        for name in ("alice", "bob", "carol"):
            _, issued = await login(env, client, login=name)
            people[name] = issued.access_token

        async def profile(name: str) -> str:
            response = await call_tool(env, people[name], "get_user_profile")
            return response.json()["result"]["structuredContent"]["login"]

        names = [name for name in people for _ in range(5)]
        assert await asyncio.gather(*(profile(n) for n in names)) == names


async def test_the_login_and_whoami_agree_on_who_and_which_client(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Whoami Client")
        _, issued = await login(env, client, login="dora")
        result = (await call_tool(env, issued.access_token, "whoami")).json()["result"]["structuredContent"]
        assert result["login"] == "dora" and result["client_id"] == client.client_id
        assert result["client_name"] == "Whoami Client" and result["scopes"] == ["read:user"]
        assert result["expires_at"] == int(env.clock.now()) + 3600


async def test_cors_is_given_to_no_origin_beyond_the_configured_ones(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await env.http.options(
            "/mcp", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in response.headers



async def test_headers_that_disagree_with_the_body_cannot_dodge_the_scope_check(db_url: str) -> None:
    # The 2026-07-28 scope check reads Mcp-Method / Mcp-Name; the body is what would run.
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        headers, body = mcp_call("get_user_emails")
        auth = {"Authorization": f"Bearer {issued.access_token}"}
        for lie in ({"Mcp-Name": "whoami"}, {"Mcp-Method": "tools/list", "Mcp-Name": "whoami"}):
            response = await env.http.post("/mcp", json=body, headers={**headers, **auth, **lie})
            assert response.status_code in (400, 403), response.text
            assert "emails" not in response.text
        # On the handshake-era path there are no such headers to trust: the body is read.
        legacy = {**headers, **auth, "MCP-Protocol-Version": "2025-06-18", "Mcp-Name": "whoami"}
        response = await env.http.post("/mcp", json=body, headers=legacy)
        assert response.status_code == 403


async def test_an_encoded_tool_name_or_an_escaped_method_cannot_dodge_the_scope_check(db_url: str) -> None:
    import base64
    import json as jsonlib

    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        headers, body = mcp_call("get_user_emails")
        auth = {"Authorization": f"Bearer {issued.access_token}"}
        encoded = "=?base64?" + base64.b64encode(b"get_user_emails").decode() + "?="
        response = await env.http.post("/mcp", json=body, headers={**headers, **auth, "Mcp-Name": encoded})
        assert response.status_code == 403
        # Handshake-era request whose JSON spells the method with an escape.
        legacy = {**headers, **auth, "MCP-Protocol-Version": "2025-06-18"}
        raw = jsonlib.dumps(body).replace('"tools/call"', '"tools\\/call"')
        response = await env.http.post("/mcp", content=raw, headers={**legacy, "content-type": "application/json"})
        assert response.status_code == 403
        # Absurdly nested JSON is a client error, not a crash.
        nested = '{"method":"tools/call","params":' + "[" * 100_000 + "]" * 100_000 + "}"
        response = await env.http.post("/mcp", content=nested, headers={**legacy, "content-type": "application/json"})
        assert response.status_code < 500


async def test_the_sse_message_endpoint_reads_the_body_whatever_the_headers_say(db_url: str) -> None:
    async with in_process(database_url=db_url, transport="sse") as env:
        _, issued = await login(env)
        headers, body = mcp_call("get_user_emails")
        response = await env.http.post(
            "/messages/?session_id=" + "0" * 32,
            json=body,
            headers={**headers, "Authorization": f"Bearer {issued.access_token}", "Mcp-Method": "tools/list"},
        )
        assert response.status_code == 403


async def test_the_bearer_token_stops_at_the_guard_and_identity_travels_on(db_url: str) -> None:
    seen: dict[str, str] = {}

    async def echo_headers(ctx: Context) -> str:
        """Test tool: records the HTTP headers a tool can read, answers with the caller's login."""
        request = ctx.request_context.request
        seen.update(request.headers)
        seen["scope"] = repr(request.scope)  # everything a tool can reach of the HTTP request
        return caller().github_login

    async with in_process(database_url=db_url) as env:
        env.services.mcp.add_tool(echo_headers)
        _, tokens = await login(env, login="alice")
        response = await call_tool(env, tokens.access_token, "echo_headers")
    assert response.status_code == 200, response.text
    assert response.json()["result"]["content"][0]["text"] == "alice"
    assert seen.get("mcp-name") == "echo_headers"  # the tool saw the request's headers...
    assert "authorization" not in seen and tokens.access_token not in str(seen)  # ...but not the token
    assert "user" in seen["scope"]  # identity is there, as scope["user"]


async def test_a_body_read_for_the_scope_check_is_bounded_and_a_larger_one_is_413(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        headers, body = mcp_call("whoami", {"padding": "x" * (5 * 1024 * 1024)})
        legacy = {**headers, "Authorization": f"Bearer {issued.access_token}", "MCP-Protocol-Version": "2025-06-18"}
        response = await env.http.post("/mcp", json=body, headers=legacy)
        assert response.status_code == 413
        # A normal legacy call still passes through the same check to the transport.
        headers, body = mcp_call("whoami")
        response = await env.http.post("/mcp", json=body, headers={**legacy, "Content-Type": "application/json"})
        assert response.status_code == 200
