"""Every refused OAuth or MCP request leaves one log line saying why, and for whom, without secrets."""

from __future__ import annotations

import logging

import httpx
import pytest

from auth_mcp.authorization.cimd import MetadataDocumentClients
from tests.support.clock import FakeClock
from tests.support.oauth import Client, authorize, authorize_url, call_tool, exchange, login, new_client, pkce, refresh
from tests.support.server import in_process


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "auth_mcp.refused"]


def lines(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in refusals(caplog))


async def test_authorize_refusals_name_the_error_and_the_client(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        _, challenge = pkce()
        elsewhere = Client(client_id=client.client_id, redirect_uri="http://127.0.0.1:9/not-registered")
        await env.http.get(authorize_url(env, elsewhere, challenge))
        await env.http.get(authorize_url(env, Client(client_id="no-such-client", redirect_uri=client.redirect_uri), challenge))
        await env.http.get(authorize_url(env, client, challenge, scope="admin:everything"))
    records = refusals(caplog)
    assert [(r.endpoint, r.error, r.client_id) for r in records] == [  # type: ignore[attr-defined]
        ("/authorize", "invalid_request", client.client_id),
        ("/authorize", "invalid_request", "no-such-client"),  # as the SDK answers it
        ("/authorize", "invalid_scope", client.client_id),
    ]
    text = lines(caplog)
    assert "http://127.0.0.1:9/not-registered" in text and "is not registered" in text
    assert "Client ID 'no-such-client' not found" in text and "admin:everything" in text
    assert all(record.levelno == logging.INFO for record in records)


async def test_a_metadata_document_that_cannot_be_fetched_is_logged_with_the_reason(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client_id = "https://client.example/client.json"

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    clock = FakeClock()
    documents = MetadataDocumentClients(clock=clock, resolver=resolve, transport=httpx.MockTransport(lambda request: httpx.Response(404)))
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": documents}) as env:
        _, challenge = pkce()
        await env.http.get(authorize_url(env, Client(client_id=client_id, redirect_uri="http://127.0.0.1:5/cb"), challenge))
    [record] = refusals(caplog)
    assert record.error == "invalid_client" and record.client_id == client_id  # type: ignore[attr-defined]
    assert "HTTP 404" in record.getMessage()


async def test_token_refusals_are_logged_without_the_code_or_token(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        outcome, verifier = await authorize(env, client)
        await exchange(env, client, outcome["code"], "wrong-" + verifier)
        client_, tokens = await login(env)
        await refresh(env, client_, tokens.refresh_token)
        await refresh(env, client_, tokens.refresh_token)  # replayed
        await env.http.post("/token", data={"grant_type": "authorization_code", "code": "x", "client_id": "nobody", "code_verifier": "v" * 43})
    text = lines(caplog)
    assert "refused /token 400 invalid_grant: incorrect code_verifier" in text
    assert f"refused /token 400 invalid_grant: refresh token does not exist (client {client_.client_id})" in text
    assert "refused /token 401 invalid_client" in text and "client nobody" in text
    for secret in (outcome["code"], verifier, tokens.refresh_token, tokens.access_token):
        assert secret not in text


async def test_mcp_refusals_name_the_person_and_the_tool(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env, login="alice")
        await call_tool(env, tokens.access_token, "get_user_emails")
        await call_tool(env, "amcp_at_not-a-real-token-value-0123456789", "whoami")
        await call_tool(env, None, "whoami")  # no credentials: the normal start of discovery, not logged
    records = refusals(caplog)
    assert [(r.endpoint, r.status, r.error) for r in records] == [  # type: ignore[attr-defined]
        ("/mcp", 403, "insufficient_scope"),
        ("/mcp", 401, "invalid_token"),
    ]
    scoped = records[0]
    assert scoped.tool == "get_user_emails" and scoped.client_id == client.client_id  # type: ignore[attr-defined]
    assert scoped.person == "alice" and isinstance(scoped.person_id, int)  # type: ignore[attr-defined]
    assert f"(client {client.client_id}, person alice ({scoped.person_id}), tool get_user_emails)" in scoped.getMessage()  # type: ignore[attr-defined]
    assert "not-a-real-token" not in lines(caplog)


async def test_a_refused_registration_is_logged_with_the_reason(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with in_process(database_url=db_url) as env:
        response = await env.http.post("/register", json={"client_name": "x", "redirect_uris": ["http://evil.example/cb"]})
    assert response.status_code == 400
    assert "refused /register 400 invalid_redirect_uri: http redirect URIs are only allowed on the loopback interface" in lines(caplog)
