"""/metrics is not public: it answers only a bearer token the operator configured."""

from __future__ import annotations

from tests.support.server import in_process

TOKEN = "prometheus-scrape-token-0123456789abcdef"


async def test_metrics_need_the_configured_token(db_url: str) -> None:
    async with in_process(database_url=db_url, metrics_token=TOKEN) as env:
        assert (await env.http.get("/metrics")).status_code == 401
        wrong = await env.http.get("/metrics", headers={"authorization": "Bearer " + "x" * len(TOKEN)})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        right = await env.http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200 and "auth_mcp_http_request_duration_seconds" in right.text


async def test_without_a_token_metrics_are_not_served_at_all(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        assert (await env.http.get("/metrics")).status_code == 404
