"""`GET /`: what this server is and how to connect, for a person and for a program."""

from __future__ import annotations

from auth_mcp.http.negotiation import prefers_html
from tests.support.server import in_process

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_a_person_opening_the_server_url_learns_the_mcp_url_and_where_to_manage_access() -> None:
    async with in_process() as env:
        page = await env.http.get("/", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f"<code class=\"url\">{env.issuer}/mcp</code>" in page.text
        assert f"claude mcp add --transport http auth-mcp {env.issuer}/mcp" in page.text
        assert f'href="{env.issuer}/account"' in page.text
        assert "Dev mode" in page.text  # no GitHub credentials here
        assert page.headers["x-frame-options"] == "DENY" and "default-src 'none'" in page.headers["content-security-policy"]


async def test_a_program_gets_the_same_facts_as_json() -> None:
    async with in_process(transport="sse") as env:
        answer = await env.http.get("/", headers={"Accept": "application/json"})
        assert answer.status_code == 200
        facts = answer.json()
        assert facts["mcp_url"] == f"{env.issuer}/sse" and facts["transport"] == "sse"
        assert facts["resource_metadata_url"] == f"{env.issuer}/.well-known/oauth-protected-resource/sse"
        assert facts["account_url"] == f"{env.issuer}/account"


def test_html_is_chosen_only_when_the_accept_header_ranks_it_first() -> None:
    assert prefers_html(BROWSER_ACCEPT)
    assert not prefers_html("application/json")
    assert not prefers_html("*/*")
    assert not prefers_html("")
    assert not prefers_html("application/json, text/html;q=0.5")
    assert prefers_html("text/html;q=0.9, application/json;q=0.5")
