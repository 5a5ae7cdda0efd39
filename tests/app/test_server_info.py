"""What the MCP server says about itself in `initialize`."""

from __future__ import annotations

from importlib.metadata import version

from tests.support.oauth import login
from tests.support.server import in_process


async def test_initialize_reports_the_installed_package_version(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, tokens = await login(env)
        response = await env.http.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "tests", "version": "1"}},
            },
            headers={
                "Authorization": f"Bearer {tokens.access_token}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            },
        )
        assert response.status_code == 200, response.text
        server_info = response.json()["result"]["serverInfo"]
        assert server_info["name"] == "auth-mcp"
        assert server_info["version"] == version("auth-mcp") != ""
