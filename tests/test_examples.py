"""The example package under examples/ as its README runs it: a tool of our own, named by
AUTH_MCP_TOOLS, served by `main.py` as a process, called by the official MCP client after the
whole OAuth flow against the built-in GitHub stand-in."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import Browser
from tests.support.mcp_client import OAuthUser, connect
from tests.support.process import ROOT, serving


async def test_the_example_tool_is_served_by_main_py_without_code_changes(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT / "examples"), "AUTH_MCP_TOOLS": "profile_card.tools:TOOLS"}
    with serving(cwd=tmp_path, **env) as (_, url):
        user = OAuthUser(browser=Browser(login="alice"))
        async with connect(f"{url}/mcp", user) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"profile_card", "get_user_profile", "whoami"} <= names
            result = await client.call_tool("profile_card", {})
            assert not result.is_error, result
            assert result.structured_content is not None
            assert result.structured_content["login"] == "alice"
            assert "(@alice)" in result.structured_content["summary"]
