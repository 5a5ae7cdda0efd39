"""Client names are shown as written: characters that reorder or hide text are refused at
registration, and names that claim more than they prove get a warning on the consent page."""

from __future__ import annotations

import pytest

from auth_mcp.authorization.client_names import look_alike_warnings, name_problem
from tests.support.oauth import authorize_url, new_client, pkce, register
from tests.support.server import in_process


@pytest.mark.parametrize(
    "name",
    [
        "Visual Studio Code by \u202emoc.tfosorcim\u202c",  # right-to-left override
        "VS Code\u2066 isolate\u2069",
        "zero\u200bwidth",
        "bell\x07",
        "tab\there",
        "line\u2028separator",
        "private\ue000use",
    ],
)
async def test_registration_refuses_names_with_control_or_bidi_characters(db_url: str, name: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await register(env.http, name=name)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client_metadata" and "client_name" in response.json()["error_description"]


@pytest.mark.parametrize("name", ["Claude Code", "Café Client", "カーソル", "MCP Inspector (dev)"])
def test_ordinary_names_from_any_script_are_accepted(name: str) -> None:
    assert name_problem(name) is None


async def test_the_consent_page_warns_about_a_name_claiming_verification_and_another_domain(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Visual Studio Code by microsoft.com ✓verified", redirect_uris=["https://phish.example/cb"])
        _, challenge = pkce()
        http = env.client()
        consent = await http.get(authorize_url(env, client, challenge))
        page = await http.get(consent.headers["location"])
        assert page.status_code == 200
        assert "mentions microsoft.com" in page.text and "sent back to phish.example" in page.text
        assert "claims to be verified" in page.text
        await http.aclose()


def test_names_matching_where_the_person_is_sent_get_no_warning() -> None:
    assert look_alike_warnings("Acme for docs.acme.com", redirect_host="acme.com", verified_host=None) == []
    assert look_alike_warnings("Claude Code", redirect_host="localhost", verified_host=None) == []
    assert look_alike_warnings("ＶＳ Ｃｏｄｅ", redirect_host="localhost", verified_host=None) != []
