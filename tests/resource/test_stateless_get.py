"""Streamable HTTP, stateless: GET /mcp opens no stream. The MCP transport lets a server that
offers no SSE stream at the endpoint answer 405 Method Not Allowed (basic/transports, "Listening
for messages from the server").

Measured on main before: 1,000 GETs by one token held 1,000 streams (+76 MB, +1,000 fds) that
survived revocation."""

from __future__ import annotations

from tests.support.oauth import login
from tests.support.server import in_process


async def test_get_on_the_mcp_endpoint_is_405_and_opens_nothing(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, tokens = await login(env)
        headers = {"authorization": f"Bearer {tokens.access_token}", "accept": "text/event-stream"}
        response = await env.http.get("/mcp", headers=headers)
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert not response.headers.get("content-type", "").startswith("text/event-stream")


async def test_without_a_token_get_still_asks_for_one(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await env.http.get("/mcp", headers={"accept": "text/event-stream"})
        assert response.status_code == 401
