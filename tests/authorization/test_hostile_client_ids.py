"""Client ids and metadata documents built to break things get an OAuth error, never a 500: host
names that fail IDNA or DNS rules, non-ASCII names, lone surrogates, NUL bytes (which PostgreSQL
refuses in text), on /authorize, /token and /revoke, with SQLite and PostgreSQL."""

from __future__ import annotations

import json

import httpx
import pytest

from auth_mcp.authorization.cimd import MetadataDocumentClients
from auth_mcp.authorization.document_fetcher import PublicDocumentFetcher
from tests.authorization.test_cimd import CLIENT_ID, REDIRECT, FakeNetwork, document
from tests.support.clock import FakeClock
from tests.support.oauth import Client, authorize_url, pkce
from tests.support.server import InProcess, in_process

HOSTILE_CLIENT_IDS = [
    "https://a..b/x",
    "https://.leading.example/x",
    "https://" + "l" * 64 + ".example/x",
    "https://exa\u202emple.com/client.json",
    "https://bücher.example/client.json",
    "https://ex%00ample.com/c.json",
    "https://example.com/c\x00.json",
    "abc\x00def",
    "\x00",
    "x" * 5000,
]


class NoNetwork:
    """A resolver and transport that fail the test if anything is looked up or fetched."""

    async def resolve(self, host: str, port: int) -> list[str]:
        raise AssertionError(f"looked up {host!r}")

    def handler(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"fetched {request.url}")

    def documents(self, clock: FakeClock) -> MetadataDocumentClients:
        fetcher = PublicDocumentFetcher(clock=clock, resolver=self.resolve, transport=httpx.MockTransport(self.handler))
        return MetadataDocumentClients(clock=clock, fetcher=fetcher)


KEY = "k" * 40  # PostgreSQL needs an explicit shared key


def _hostile_env(db_url: str) -> object:
    clock = FakeClock()
    return in_process(database_url=db_url, secret_key=KEY, clock=clock, create={"metadata_documents": NoNetwork().documents(clock)})


@pytest.mark.parametrize("client_id", HOSTILE_CLIENT_IDS)
async def test_hostile_client_ids_get_an_oauth_error_at_authorize_token_and_revoke(any_db_url: str, client_id: str) -> None:
    async with _hostile_env(any_db_url) as env:  # type: ignore[attr-defined]
        assert isinstance(env, InProcess)
        _, challenge = pkce()
        page = await env.http.get(authorize_url(env, Client(client_id=client_id, redirect_uri="http://127.0.0.1:9/cb"), challenge))
        assert page.status_code == 400 and "location" not in page.headers
        form = {"grant_type": "authorization_code", "code": "c", "code_verifier": "v" * 43, "client_id": client_id}
        token = await env.http.post("/token", data=form)
        assert token.status_code in (400, 401) and token.json()["error"] in ("invalid_client", "invalid_request")
        revoke = await env.http.post("/revoke", data={"token": "t", "client_id": client_id})
        assert revoke.status_code in (400, 401) and revoke.json()["error"] in ("invalid_client", "invalid_request")


@pytest.mark.parametrize(
    "name",
    ["\ud800 lone surrogate", "nul\x00name", "Visual Studio Code\u202e moc.tfosorcim yb", "zero\u200bwidth", "line\u2028break"],
)
async def test_registration_refuses_names_that_cannot_be_stored_or_shown_as_written(any_db_url: str, name: str) -> None:
    async with in_process(database_url=any_db_url, secret_key=KEY) as env:
        body = json.dumps({"client_name": name, "redirect_uris": ["http://127.0.0.1:9/cb"]}, ensure_ascii=True)
        response = await env.http.post("/register", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"


async def test_registration_with_a_lone_surrogate_anywhere_is_refused_not_a_500(any_db_url: str) -> None:
    async with in_process(database_url=any_db_url, secret_key=KEY) as env:
        fields = {"client_name": "ok", "redirect_uris": ["http://127.0.0.1:9/cb"], "client_uri": "https://x.example/\ud800"}
        for extra in ({}, {"software_id": "\udfff"}, {"redirect_uris": ["http://127.0.0.1:9/\ud800"]}):
            body = json.dumps({**fields, **extra}, ensure_ascii=True)
            response = await env.http.post("/register", content=body, headers={"content-type": "application/json"})
            assert response.status_code in (201, 400), response.text
            if response.status_code == 201:
                # Accepted only with the field dropped: nothing unstorable is kept or echoed.
                assert "ud800" not in response.text and "udfff" not in response.text


async def test_a_document_with_lone_surrogates_is_refused_with_a_reason(db_url: str) -> None:
    body = json.dumps(document(client_name="Desk\ud800top")).encode()
    clock = FakeClock()
    network = FakeNetwork(body=body)
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": network.clients(clock)}) as env:
        _, challenge = pkce()
        page = await env.http.get(authorize_url(env, Client(client_id=CLIENT_ID, redirect_uri=REDIRECT), challenge))
        assert page.status_code == 400 and "location" not in page.headers
        assert "client_name" in page.text
