"""The whole OAuth flow with the official SDK client against the running server in dev mode."""

from __future__ import annotations

from tests.support.browser import Browser
from tests.support.mcp_client import OAuthUser, connect
from tests.support.server import run_server


async def test_a_person_logs_in_and_reads_their_profile(db_url: str) -> None:
    async with run_server(database_url=db_url) as server:
        user = OAuthUser(browser=Browser(login="alice"))
        async with connect(server.mcp_url, user) as client:
            result = await client.call_tool("get_user_profile", {})
            assert not result.is_error, result
            assert result.structured_content["login"] == "alice"
