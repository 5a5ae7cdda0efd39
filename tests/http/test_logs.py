"""No secret reaches a log line: a whole flow logged at DEBUG, searched for every secret it used."""

from __future__ import annotations

import logging
import re

import pytest

from tests.support.oauth import authorize, call_tool, exchange, new_client, query, refresh
from tests.support.server import in_process


async def test_a_full_flow_logs_no_token_code_state_or_secret(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: set[str] = set()
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, auth_method="client_secret_post")
        assert client.client_secret
        secrets.add(client.client_secret)
        browser = env.browser(login="logan")
        outcome, verifier = await authorize(env, client, browser=browser)
        secrets |= {outcome["code"], verifier}
        for url in browser.visited:
            params = query(url)
            secrets |= {params[k] for k in ("request", "state", "code") if k in params and len(params[k]) > 16}
        secrets |= {value for value in browser.http.cookies.values()}
        tokens = (await exchange(env, client, outcome["code"], verifier)).json()
        secrets |= {tokens["access_token"], tokens["refresh_token"]}
        grant = (await env.services.store.list_grants())[0]
        secrets.add(env.services.keyring.decrypt(grant.github.token_enc))
        assert (await call_tool(env, tokens["access_token"], "get_user_profile")).status_code == 200
        await call_tool(env, "amcp_at_wrong-token-value-for-the-logs", "whoami")
        secrets.add("amcp_at_wrong-token-value-for-the-logs")
        rotated = (await refresh(env, client, tokens["refresh_token"])).json()
        secrets |= {rotated["access_token"], rotated["refresh_token"]}
        await refresh(env, client, tokens["refresh_token"])  # a replay, logged as such
        await env.http.post("/revoke", data={"token": rotated["refresh_token"], **client.auth()})
    text = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records if not _tests_own_request(record))
    assert "revoked" in text and "GET /github/callback" in text  # the log did record the flow
    leaked = sorted(secret for secret in secrets if secret and secret in text)
    assert leaked == [], f"secrets in the log: {leaked}"
    assert not re.search(r"gho_[A-Za-z0-9_.-]{20,}", text)


def _tests_own_request(record: logging.LogRecord) -> bool:
    """httpx logs every request URL, for the test's own browser and clients too (their URLs carry
    codes and states, as a real browser's address bar does). The server's own outgoing requests
    are the ones to GitHub's token endpoint and API: those stay in the searched log."""
    if record.name != "httpx" or not isinstance(record.args, tuple) or len(record.args) < 2:
        return False
    path = str(record.args[1]).split("://", 1)[-1].partition("/")[2]
    return not path.startswith(("_dev/github/api/", "_dev/github/login/oauth/access_token"))
