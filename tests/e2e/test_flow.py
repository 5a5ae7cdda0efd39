"""The whole OAuth flow with the official MCP SDK client (discovery, registration, PKCE, a scripted
browser, token exchange, refresh) against the server running on a loopback port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.mcp_client import AuthorizationFailed, OAuthUser, connect
from tests.support.server import RunningServer, run_server


async def profile_login(server: RunningServer, user: OAuthUser, *, mode: str = "auto") -> str:
    async with connect(server.mcp_url, user, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("get_user_profile", {})
        assert not result.is_error, result
        return result.structured_content["login"]  # type: ignore[index]


async def test_a_person_logs_in_and_reads_their_profile(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=Browser(login="alice"))
        assert await profile_login(server, user) == "alice"
        assert user.authorizations == 1
        assert user.storage.tokens is not None and user.storage.tokens.refresh_token


@pytest.mark.parametrize(("transport", "mode"), [("streamable-http", "auto"), ("streamable-http", "legacy"), ("sse", "legacy")])
async def test_two_people_through_one_client_each_see_their_own_profile(db_url: str, transport: str, mode: str) -> None:
    async with run_server(database_url=db_url, transport=transport) as server:
        alice = OAuthUser(browser=Browser(login="alice"))
        await profile_login(server, alice, mode=mode)
        # Bob uses the same registered client (same client_id), in his own browser.
        bob = OAuthUser(browser=Browser(login="bob"))
        bob.storage.client_info = alice.storage.client_info
        await profile_login(server, bob, mode=mode)
        assert alice.storage.client_info == bob.storage.client_info

        async def whose(user: OAuthUser) -> list[str]:
            async with connect(server.mcp_url, user, mode=mode) as client:  # type: ignore[arg-type]
                results = await asyncio.gather(*(client.call_tool("get_user_profile", {}) for _ in range(5)))
                return [r.structured_content["login"] for r in results]  # type: ignore[index]

        seen = await asyncio.gather(whose(alice), whose(bob), whose(alice), whose(bob))
        assert seen == [["alice"] * 5, ["bob"] * 5, ["alice"] * 5, ["bob"] * 5]


async def test_a_restart_keeps_clients_and_tokens_working(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'auth-mcp.db'}"
    user = OAuthUser(browser=Browser(login="carol"))
    async with run_server(database_url=database) as server:
        port = server.port
        await profile_login(server, user)
    async with run_server(database_url=database, port=port) as server, connect(server.mcp_url, user) as client:
        result = await client.call_tool("whoami", {})
        assert result.structured_content["login"] == "carol"  # type: ignore[index]
        assert not (await client.call_tool("get_user_profile", {})).is_error
    assert user.authorizations == 1


async def test_the_client_refreshes_and_the_used_refresh_token_stops_working(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=Browser(login="dave"))
        async with connect(server.mcp_url, user) as client:
            await client.call_tool("whoami", {})
            first = user.storage.tokens
            assert first is not None and user.auth is not None
            user.auth.context.token_expiry_time = 1.0  # the client believes its access token expired
            result = await client.call_tool("whoami", {})
            assert result.structured_content["login"] == "dave"  # type: ignore[index]
        second = user.storage.tokens
        assert second is not None and second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token
        assert user.authorizations == 1
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{server.url}/token",
                data={"grant_type": "refresh_token", "refresh_token": first.refresh_token, "client_id": user.storage.client_info.client_id},  # type: ignore[union-attr]
            )
        assert response.status_code == 400


async def test_an_expired_access_token_sends_the_client_through_login_again(db_url: str) -> None:
    clock = FakeClock()
    async with run_server(database_url=db_url, clock=clock, access_token_ttl=600) as server:
        user = OAuthUser(browser=Browser(login="erin"))
        await profile_login(server, user)
        clock.advance(601)
        assert await profile_login(server, user) == "erin"
        assert user.authorizations == 2


async def test_a_revoked_token_sends_the_client_through_login_again(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=Browser(login="fay"))
        await profile_login(server, user)
        assert user.storage.tokens is not None and user.storage.client_info is not None
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{server.url}/revoke",
                data={"token": user.storage.tokens.refresh_token, "client_id": user.storage.client_info.client_id},
            )
        assert response.status_code == 200
        assert await profile_login(server, user) == "fay"
        assert user.authorizations == 2


async def test_when_github_drops_the_grant_the_tool_fails_and_the_next_request_logs_in_again(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=Browser(login="gus"))
        await profile_login(server, user)
        assert server.services.dev_github is not None
        server.services.dev_github.revoke_all("gus")
        async with connect(server.mcp_url, user) as client:
            failed = await client.call_tool("get_user_profile", {})
            assert failed.is_error and "Sign in again" in failed.content[0].text  # type: ignore[union-attr]
            again = await client.call_tool("get_user_profile", {})
            assert not again.is_error
        assert user.authorizations == 2


async def test_step_up_to_a_wider_scope_through_the_sdk_client(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=Browser(login="hal"))
        async with connect(server.mcp_url, user) as client:
            assert not (await client.call_tool("get_user_profile", {})).is_error
            emails = await client.call_tool("get_user_emails", {})
            assert not emails.is_error, emails
            assert emails.structured_content["emails"][0]["email"] == "hal@example.com"  # type: ignore[index]
        assert user.authorizations == 2
        assert user.storage.tokens is not None
        assert set(user.storage.tokens.scope.split()) == {"read:user", "user:email"}  # type: ignore[union-attr]


@pytest.mark.parametrize(("browser", "expected"), [(Browser(consent="deny"), "access_denied"), (Browser(github="cancel"), "access_denied")])
async def test_a_refusal_reaches_the_client_as_an_oauth_error_with_state_and_iss(db_url: str, browser: Browser, expected: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=browser)
        with pytest.raises(BaseException) as caught:
            await profile_login(server, user)
        failure = _find(caught.value, AuthorizationFailed)
        assert failure.params["error"] == expected
        assert failure.params["iss"] == server.url and failure.params["state"]


async def test_a_github_outage_at_login_reaches_the_client_as_temporarily_unavailable(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        assert server.services.dev_github is not None
        server.services.dev_github.fail_next("access_token", "503")
        user = OAuthUser(browser=Browser(login="ida"))
        with pytest.raises(BaseException) as caught:
            await profile_login(server, user)
        assert _find(caught.value, AuthorizationFailed).params["error"] == "temporarily_unavailable"


async def test_the_whole_flow_on_postgresql(postgres_url: str) -> None:
    async with run_server(database_url=postgres_url, secret_key="p" * 40) as server:
        alice, bob = OAuthUser(browser=Browser(login="alice")), OAuthUser(browser=Browser(login="bob"))
        assert await asyncio.gather(profile_login(server, alice), profile_login(server, bob)) == ["alice", "bob"]
        async with connect(server.mcp_url, alice) as client:
            assert alice.auth is not None
            alice.auth.context.token_expiry_time = 1.0
            assert (await client.call_tool("whoami", {})).structured_content["login"] == "alice"  # type: ignore[index]


async def test_a_2026_stateless_request_without_a_token_is_refused(db_url: str) -> None:
    async with run_server(database_url=db_url) as server, httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}},
            headers={"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"},
        )
        assert response.status_code == 401 and "resource_metadata=" in response.headers["www-authenticate"]


def _find(error: BaseException, kind: type[AuthorizationFailed]) -> AuthorizationFailed:
    """The SDK wraps our callback's exception in task-group exception groups."""
    stack = [error]
    while stack:
        current = stack.pop()
        if isinstance(current, kind):
            return current
        stack.extend(getattr(current, "exceptions", ()))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    raise AssertionError(f"no {kind.__name__} in {error!r}")
