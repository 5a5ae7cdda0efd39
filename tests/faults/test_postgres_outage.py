"""PostgreSQL down, read-only, or refusing one function, under one in-process server: every
endpoint answers 503 with Retry-After and one log line, /readyz is red until writes work, and
the server recovers by itself when the database returns (a throwaway cluster of the test's own)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.support.forms import parse_forms
from tests.support.oauth import Client, Tokens, authorize_url, call_tool, login, pkce, refresh, register
from tests.support.server import InProcess, in_process
from tests.support.throwaway_postgres import ThrowawayPostgres, throwaway_postgres

SECRET = "fault-tests-share-this-key-" + "k" * 16


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as cluster:
        yield cluster


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url.path, response.status_code, response.text[:300])
    assert int(response.headers["retry-after"]) >= 1


def assert_one_line_logs(caplog: pytest.LogCaptureFixture) -> None:
    tracebacks = [record.getMessage() for record in caplog.records if record.exc_info or record.exc_text]
    assert tracebacks == []
    assert any("answered 503" in record.getMessage() for record in caplog.records)


async def consent_form(env: InProcess, client: Client) -> tuple[httpx.AsyncClient, str, dict[str, str]]:
    """A browser that has the consent page in front of it: (its HTTP client, the page URL, the form)."""
    _, challenge = pkce()
    http = env.client()
    response = await http.get(authorize_url(env, client, challenge))
    assert response.status_code == 302, response.text
    page_url = urljoin(env.issuer, response.headers["location"])
    page = await http.get(page_url)
    assert page.status_code == 200, page.text
    form = parse_forms(page.text)[0]
    return http, page_url, {**form.fields, "decision": "approve"}


async def approved_state(env: InProcess, client: Client) -> tuple[httpx.AsyncClient, str]:
    """A browser that approved and is on its way to GitHub: (its HTTP client, our state toward GitHub)."""
    http, page_url, form = await consent_form(env, client)
    response = await http.post(urljoin(page_url, "/consent"), data=form)
    assert response.status_code == 303, response.text
    state = parse_qs(urlsplit(response.headers["location"]).query)["state"][0]
    return http, state


async def test_with_the_database_down_every_endpoint_answers_503_and_all_recovers_when_it_returns(
    postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(database_url=postgres.url, secret_key=SECRET) as env:
        client, issued = await login(env)
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200  # cached now
        consenting, consent_url, form = await consent_form(env, client)
        returning, state = await approved_state(env, client)
        _, challenge = pkce()

        postgres.stop()
        caplog.clear()
        caplog.set_level(logging.INFO)
        assert (await env.http.get("/readyz")).status_code == 503
        assert_unavailable(await register(env.http))
        assert_unavailable(await env.http.get(authorize_url(env, client, challenge)))
        assert_unavailable(await consenting.get(consent_url))
        assert_unavailable(await consenting.post(urljoin(consent_url, "/consent"), data=form))
        browser_page = await consenting.get(consent_url, headers={"Accept": "text/html"})
        assert_unavailable(browser_page)
        assert "text/html" in browser_page.headers["content-type"]
        assert_unavailable(await returning.get("/github/callback", params={"code": "c", "state": state}))
        assert_unavailable(await refresh(env, client, issued.refresh_token))
        assert_unavailable(await env.http.post("/revoke", data={"token": issued.refresh_token, **client.auth()}))
        # A cached token passes the door; the tool then needs the grant from the database.
        assert_unavailable(await call_tool(env, issued.access_token, "get_user_profile"))
        env.clock.advance(31)  # past the verification cache: the bearer check itself needs the database
        assert_unavailable(await call_tool(env, issued.access_token, "whoami"))
        assert_one_line_logs(caplog)

        postgres.start()
        assert (await env.http.get("/readyz")).status_code == 200
        renewed = await refresh(env, client, issued.refresh_token)  # not spent by the failed attempt
        assert renewed.status_code == 200, renewed.text
        assert (await call_tool(env, renewed.json()["access_token"], "get_user_profile")).status_code == 200
        assert (await register(env.http)).status_code == 201
        again = await returning.get("/github/callback", params={"code": "c", "state": state})
        assert again.status_code in (302, 303)  # the approved login goes on (GitHub refuses the fake code)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_after_a_database_restart_the_first_requests_succeed(
    postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    # Every pooled connection died with the server (a restart, or a crash and recovery). The
    # requests after it is back must not be the ones that find out: no 503, no retry by the client.
    async with in_process(database_url=postgres.url, secret_key=SECRET) as env:
        client, issued = await login(env)
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        postgres.restart(mode)
        caplog.clear()
        env.clock.advance(31)  # past the verification cache: the bearer check reads the database
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        renewed = await refresh(env, client, issued.refresh_token)
        assert renewed.status_code == 200, renewed.text
        assert (await call_tool(env, renewed.json()["access_token"], "get_user_profile")).status_code == 200
        assert not [record for record in caplog.records if "answered 503" in record.getMessage() or record.exc_info]


async def test_a_read_only_database_refuses_writes_with_503_and_readyz_is_red_until_writes_work(
    postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(database_url=postgres.url, secret_key=SECRET) as env:
        client, issued = await login(env)
        assert (await env.http.get("/readyz")).status_code == 200
        postgres.psql("ALTER SYSTEM SET default_transaction_read_only = on")
        postgres.psql("SELECT pg_reload_conf()")
        caplog.clear()
        caplog.set_level(logging.INFO)
        ready = await env.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["writes"] == "failing"
        assert_unavailable(await register(env.http))
        assert_unavailable(await refresh(env, client, issued.refresh_token))
        # Reads still work: tokens are verified and whoami answers.
        assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        assert (await env.http.get("/readyz")).status_code == 503
        assert_one_line_logs(caplog)

        postgres.psql("ALTER SYSTEM RESET default_transaction_read_only")
        postgres.psql("SELECT pg_reload_conf()")
        assert (await env.http.get("/readyz")).status_code == 200
        assert (await refresh(env, client, issued.refresh_token)).status_code == 200
        assert (await register(env.http)).status_code == 201


async def test_a_refresh_whose_notification_fails_still_hands_over_the_new_tokens(
    postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    # The rotation commits; then telling the other replicas fails (here: pg_notify is not
    # allowed for the server's role). The client must get its new pair, and the grant must live.
    postgres.psql("CREATE ROLE app LOGIN")
    postgres.psql("CREATE DATABASE app OWNER app")
    postgres.psql("REVOKE EXECUTE ON FUNCTION pg_notify(text, text) FROM PUBLIC", database="app")
    url = f"postgresql+asyncpg://app@127.0.0.1:{postgres.port}/app"
    async with in_process(database_url=url, secret_key=SECRET) as env:
        client, issued = await login(env)
        caplog.set_level(logging.INFO)
        response = await refresh(env, client, issued.refresh_token)
        assert response.status_code == 200, response.text
        renewed = Tokens(**{k: response.json()[k] for k in ("access_token", "refresh_token", "scope", "expires_in")})
        assert (await call_tool(env, renewed.access_token, "whoami")).status_code == 200
        assert (await refresh(env, client, renewed.refresh_token)).status_code == 200
        assert len(await env.services.store.list_grants()) == 1
        assert any("could not tell the other replicas" in record.getMessage() for record in caplog.records)
        assert not [record for record in caplog.records if record.exc_info]
