"""No secret reaches a log line: a whole flow logged at DEBUG, searched for every secret it used."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Literal
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from auth_mcp.authorization.cimd import MetadataDocumentClients
from auth_mcp.http import access_log
from auth_mcp.http.logs import DATABASE_LOGGERS, TextFormatter, configure_logging, escape
from auth_mcp.storage import schema
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import prepare_schema
from tests.support.clock import FakeClock
from tests.support.oauth import authorize, authorize_url, call_tool, exchange, login, new_client, pkce, query, refresh
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


# Logs an operator can act on, that an attacker cannot forge -----------------------------------


@contextlib.contextmanager
def configured(level: str, log_format: Literal["text", "json"], *, log_sql: bool = False) -> Iterator[None]:
    """configure_logging for one test, then everything it changed put back."""
    root = logging.getLogger()
    names = [*DATABASE_LOGGERS, "httpx", "alembic"]
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in names}
    try:
        configure_logging(level, log_format, log_sql=log_sql)
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level_ in saved[2].items():
            logging.getLogger(name).setLevel(level_)


async def test_a_newline_in_a_path_client_id_or_callback_error_cannot_forge_a_text_log_line(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = "\n2026-11-30 10:00:00,000 INFO    auth_mcp.access [-]: FORGED"

    async def inward(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # refused before any connection: no network in tests

    clock = FakeClock()
    documents = MetadataDocumentClients(clock=clock, resolver=inward)
    with configured("INFO", "text"):
        async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": documents}) as env:
            await env.http.get("/mcp/x" + quote(forged))  # the path is logged percent-decoded
            await env.http.get("/authorize", params={"client_id": "https://client.example/c" + forged, "response_type": "code"})
            client = await new_client(env)
            browser = env.browser()
            browser.stop_before = env.issuer + "/github/callback"
            _, challenge = pkce()
            callback = await browser.go(authorize_url(env, client, challenge), until="never://")
            state = query(callback)["state"]
            await browser.http.get(env.issuer + "/github/callback?" + urlencode({"state": state, "error": "x" + forged}))
    err = capsys.readouterr().err
    escaped = [line for line in err.splitlines() if "\\n2026-11-30 10:00:00,000 INFO    auth_mcp.access [-]: FORGED" in line]
    # Sorted: access lines come from the log writer's thread, after lines logged in the request.
    assert sorted(line.split("]: ", 1)[1][:40] for line in escaped) == [
        '127.0.0.1 "GET /mcp/x\\n2026-11-30 10:00:',
        "refused /authorize 400 invalid_client: T",
        "refused /github/callback 302 server_erro",
    ]
    assert not [line for line in err.splitlines() if line.startswith("2026-11-30 10:00:00")]


def test_the_text_format_escapes_values_but_keeps_its_own_template() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb %s %r %d", ("c\x1b[31md\u202e", "ok", 7), None)
    record.request_id = "-"
    formatted = TextFormatter().format(record)
    assert formatted.endswith("a\nb c\\x1b[31md\\u202e 'ok' 7")
    assert record.args == ("c\x1b[31md\u202e", "ok", 7)  # other handlers see the record unchanged


async def test_json_lines_carry_refusals_and_access_fields_as_keys(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with configured("INFO", "json"):
        async with in_process(database_url=db_url) as env:
            client, tokens = await login(env, login="alice")
            await call_tool(env, tokens.access_token, "whoami")
            await call_tool(env, tokens.access_token, "get_user_emails")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [refusal] = [line for line in lines if line["logger"] == "auth_mcp.refused"]
    assert refusal["error"] == "insufficient_scope" and refusal["client_id"] == client.client_id
    assert refusal["person"] == "alice" and refusal["tool"] == "get_user_emails" and refusal["status"] == 403
    calls = [line for line in lines if line["logger"] == "auth_mcp.access" and line.get("path") == "/mcp"]
    assert [(c["person"], c["tool"], c["status"]) for c in calls] == [("alice", "whoami", 200), ("alice", "get_user_emails", 403)]
    assert all(isinstance(c["person_id"], int) and c["method"] == "POST" and "duration_ms" in c for c in calls)


async def test_mcp_access_lines_name_the_person_and_the_tool(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with in_process(database_url=db_url) as env:
        _, tokens = await login(env, login="bob")
        await call_tool(env, tokens.access_token, "get_user_profile")
    [line] = [r.getMessage() for r in caplog.records if r.name == "auth_mcp.access" and '"POST /mcp"' in r.getMessage()]
    assert re.search(r'"POST /mcp" 200 [\d.]+ms person=bob id=\d+ tool=get_user_profile$', line), line


async def test_database_drivers_stay_quiet_at_debug_unless_asked(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for log_sql in (False, True):
        with configured("DEBUG", "text", log_sql=log_sql):
            async with in_process(database_url=db_url) as env:
                await login(env)
        err = capsys.readouterr().err
        driver_lines = [line for line in err.splitlines() if re.search(r" (sqlalchemy|aiosqlite|asyncpg)[\w.]* \[", line)]
        assert bool(driver_lines) is log_sql, driver_lines[:3]
        assert "auth_mcp.access" in err


async def test_database_errors_never_carry_bound_parameters(any_db_url: str) -> None:
    engine = create_engine(any_db_url)
    await prepare_schema(engine, upgrade_outdated=True)
    secret = "gAAAA-ciphertext-of-a-github-token"
    statement = insert(schema.clients).values(client_id="c1", info={}, client_secret_enc=secret, created_at=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
        with pytest.raises(IntegrityError) as raised:
            async with engine.begin() as conn:
                await conn.execute(statement)
    finally:
        await engine.dispose()
    assert secret not in str(raised.value) and "hidden due to hide_parameters" in str(raised.value)
async def test_a_tool_call_is_one_json_log_line_with_its_audit_fields_at_the_top(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from auth_mcp.http.logs import JsonFormatter
    from tests.support.oauth import login

    caplog.set_level(logging.INFO, logger="auth_mcp.audit")
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env, login="logan")
        response = await call_tool(env, issued.access_token, "whoami", {"note": "a value the log must not show"})
        await env.services.audit.recorder.flush()
    [record] = [record for record in caplog.records if record.name == "auth_mcp.audit"]
    line = JsonFormatter().format(record)
    assert "\n" not in line and "a value the log must not show" not in line
    entry = json.loads(line)
    assert entry["logger"] == "auth_mcp.audit" and entry["message"] == "audit"
    assert (entry["github_login"], entry["tool"], entry["outcome"], entry["upstream"]) == ("logan", "whoami", "ok", "builtin")
    assert entry["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "person", "tool"),
    [
        ("/mcp", "octocat", "whoami"),  # printable ASCII: written out at once
        ("/token", None, None),
        ("/mcp/x\n2026-11-30 10:00:00,000 INFO    FORGED", None, None),  # a control character: the careful way
        ("/mcp", "dora", "t\u202eool"),  # a bidirectional override in a tool's name
        ("/mcp", "dörte", "whoami"),  # not ASCII, harmless: still formatted from the template
    ],
)
def test_an_access_line_reads_the_same_whichever_way_it_was_made(path: str, person: str | None, tool: str | None) -> None:
    item = (1_800_000_000.25, "rid", ("127.0.0.1", 5), "POST", path, 200, 0.01234, person, 42 if person else None, tool)
    line = access_log._line(item)
    # The template with its values (the JSON format's message, other handlers' records) ...
    template = '%s "%s %s" %d %.1fms' + (" person=%s id=%s tool=%s" if person else "")
    values = ("127.0.0.1", "POST", path, 200, 12.34, *((person, 42, tool) if person else ()))
    assert line.msg % line.args == template % values
    # ... and the text format's line, with what a request sent escaped.
    text = TextFormatter().format_line(line)
    assert text.endswith("]: " + escape(template % values)) and "\n" not in text and "\u202e" not in text
    assert line.extra()["duration_ms"] == 12.3
