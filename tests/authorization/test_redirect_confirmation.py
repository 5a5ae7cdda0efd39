"""Answers that would send the person to someone else's website go through a page they confirm:
errors before consent (also to browser-launching schemes) and denials."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from auth_mcp.authorization.redirect_confirmation import destination_host, leaves_the_device
from tests.support.forms import parse_forms
from tests.support.oauth import Client, authorize_url, new_client, pkce, query
from tests.support.server import InProcess, in_process

BROWSER_LAUNCHING = [
    "microsoft-edge:https://phish.example/cb",
    "x-safari-https://phish.example/cb",
    "googlechrome://phish.example/cb",
    "intent://phish.example/cb",
    "com.example.app:/open?u=https://phish.example/cb",
]


@pytest.mark.parametrize("redirect_uri", BROWSER_LAUNCHING)
async def test_an_error_for_a_browser_launching_redirect_is_a_page_not_a_redirect(db_url: str, redirect_uri: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, redirect_uris=[redirect_uri])
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, client, challenge, scope="repo"))
        assert response.status_code == 400 and "location" not in response.headers
        assert "phish.example" in response.text and "Continue to" in response.text


@pytest.mark.parametrize("redirect_uri", ["http://127.0.0.1:4567/callback", "cursor://anysphere.cursor-retrieval/oauth/callback", "com.example.app:/cb"])
def test_loopback_and_app_redirects_stay_on_the_device(redirect_uri: str) -> None:
    assert not leaves_the_device(redirect_uri)


def test_the_page_names_the_website_a_browser_scheme_opens() -> None:
    assert destination_host("microsoft-edge:https://phish.example/cb") == "phish.example"


async def test_a_denial_to_a_website_shows_where_it_leads_and_to_an_app_redirects_at_once(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        website = await new_client(env, redirect_uris=["https://phish.example/cb"])
        page = await _deny(env, website)
        assert page.status_code == 400 and "location" not in page.headers
        (link,) = re.findall(r'<a href="([^"]+)">Continue to', page.text)
        target = html.unescape(link)
        assert target.startswith("https://phish.example/cb?") and query(target)["error"] == "access_denied"
        native = await new_client(env)
        answer = await _deny(env, native)
        assert answer.status_code == 303 and answer.headers["location"].startswith(native.redirect_uri)


async def _deny(env: InProcess, client: Client) -> httpx.Response:
    """Open the consent page for `client` and press Deny; the server's answer to the form."""
    _, challenge = pkce()
    http = env.client()
    consent = await http.get(authorize_url(env, client, challenge))
    page = await http.get(consent.headers["location"])
    form = parse_forms(page.text)[0]
    answer = await http.post(form.action, data={**form.fields, "decision": "deny"}, headers={"origin": env.issuer})
    await http.aclose()
    return answer
