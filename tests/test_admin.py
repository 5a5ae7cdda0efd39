"""Operator commands: what they answer, their exit codes, and that they act on a running server at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from auth_mcp import admin
from tests.support.oauth import call_tool, login, mcp_call, new_client
from tests.support.process import serving
from tests.support.server import InProcess, in_process

ROOT = Path(__file__).resolve().parents[1]


def operator(env: InProcess) -> admin.Operator:
    return admin.Operator(store=env.services.store, revoker=env.services.revoker, purger=env.services.purger)


async def test_an_operator_lists_grants_with_client_names_and_revokes_a_person_everywhere(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Ops Client")
        _, alice_one = await login(env, client, login="alice")
        _, alice_two = await login(env, await new_client(env, name="Second Tool"), login="alice")
        _, bob = await login(env, client, login="bob")
        listing = await admin.list_grants(operator(env), "ALICE")
        text = "\n".join(listing.lines)
        assert text.count("alice (") == 2 and "bob" not in text
        assert "Ops Client" in text and "Second Tool" in text and client.client_id not in text
        assert listing.lines[0].split() == ["GRANT", "PERSON", "CLIENT", "SCOPES", "CREATED", "(UTC)", "LAST", "TOKEN"]
        assert [row["client_name"] for row in listing.data] == ["Ops Client", "Second Tool"]
        revoked = await admin.revoke_person(operator(env), "alice")
        assert revoked.ok and revoked.lines == [f"Revoked 2 grant(s) of alice ({revoked.data['github_user_id']}): Ops Client, Second Tool."]
        for token in (alice_one.access_token, alice_two.access_token):
            assert (await call_tool(env, token, "whoami")).status_code == 401
        assert (await call_tool(env, bob.access_token, "whoami")).status_code == 200
        github = env.services.dev_github
        assert github is not None
        assert github.calls.count(("DELETE", "/applications/auth-mcp-dev/token")) == 2


async def test_unknown_people_clients_and_grants_are_failures_that_say_so(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        await login(env, login="alice")
        for report, words in (
            (await admin.revoke_person(operator(env), "alcie"), "No grants of 'alcie'"),
            (await admin.delete_client(operator(env), "not-a-client"), "No client 'not-a-client' is registered"),
            (await admin.revoke_grant(operator(env), "00000000"), "No grant with an id starting '00000000'"),
            (await admin.revoke_grant(operator(env), "abc"), "at least 8 characters"),
            (await admin.list_grants(operator(env), "nobody"), "No grants of 'nobody'"),
        ):
            assert not report.ok and words in report.problems[0], report.problems
        assert len(await env.services.store.list_grants()) == 1


async def test_one_grant_is_revoked_by_its_id_prefix_and_the_others_stay(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, first = await login(env, await new_client(env, name="First"), login="alice")
        _, second = await login(env, await new_client(env, name="Second"), login="alice")
        grant = next(g for g in await env.services.store.list_grants() if g.client_name == "First")
        report = await admin.revoke_grant(operator(env), grant.grant_id[: admin.GRANT_ID_SHOWN])
        assert report.ok and report.lines == [f"Revoked grant {grant.grant_id[:12]}: alice through First."]
        assert (await call_tool(env, first.access_token, "whoami")).status_code == 401
        assert (await call_tool(env, second.access_token, "whoami")).status_code == 200


async def test_deleting_a_client_revokes_what_was_granted_through_it_and_purge_reads_well(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Doomed")
        _, tokens = await login(env, client, login="carol")
        clients = await admin.list_clients(operator(env))
        assert any(line.startswith("Doomed") and client.client_id in line for line in clients.lines)
        assert clients.data[0]["grants"] == 1
        deleted = await admin.delete_client(operator(env), client.client_id)
        assert deleted.lines == [f"Deleted client Doomed ({client.client_id}) and revoked 1 grant(s) made through it."]
        assert (await call_tool(env, tokens.access_token, "whoami")).status_code == 401
        assert await env.services.store.get_client(client.client_id) is None
        assert (await admin.purge(operator(env))).lines == ["Nothing to purge: no expired rows."]
        await new_client(env, name="Never used")
        env.clock.advance(2 * 24 * 3600)
        purged = await admin.purge(operator(env))
        assert purged.lines == ["Purged 1 expired row(s): 1 unused registration(s)."] and purged.data["clients"] == 1


def run(args: list[str], *, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ["PATH"], **env}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60)


def test_the_admin_commands_answer_as_tables_or_json_with_exit_codes_and_no_server_noise(tmp_path: Path) -> None:
    database = {"AUTH_MCP_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    listing = run(["clients", "list"], cwd=tmp_path, **database)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == "No clients are registered.\n" and listing.stderr == ""
    as_json = run(["grants", "list", "--json"], cwd=tmp_path, **database)
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    missing = run(["revoke-user", "alcie"], cwd=tmp_path, **database)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "auth-mcp: No grants of 'alcie': no one by that GitHub login or id holds one.\n"
    delete = run(["clients", "delete", "not-a-client"], cwd=tmp_path, **database)
    assert delete.returncode == 1 and "No client 'not-a-client' is registered" in delete.stderr
    purge = run(["purge"], cwd=tmp_path, **database)
    assert (purge.returncode, purge.stdout) == (0, "Nothing to purge: no expired rows.\n")
    assert "session manager" not in purge.stderr.lower()


def test_version_and_help_say_what_no_command_does_and_where_the_settings_are(tmp_path: Path) -> None:
    version = run(["--version"], cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("auth-mcp 0.")
    helped = run(["--help"], cwd=tmp_path)
    assert "Without a command, auth-mcp serves MCP clients" in helped.stdout
    assert "AUTH_MCP_*" in helped.stdout and ".env.example" in helped.stdout
    assert "grants" in helped.stdout and "revoke-user" in helped.stdout


def test_revoke_user_reaches_a_running_sqlite_server_within_a_second(tmp_path: Path) -> None:
    with serving(cwd=tmp_path) as (_process, url):
        token = _sign_in_over_http(url, "bob")
        headers, body = mcp_call("whoami")
        call = {"json": body, "headers": {**headers, "Authorization": f"Bearer {token}"}, "timeout": 10}
        assert httpx.post(f"{url}/mcp", **call).status_code == 200  # cached by the server now
        revoked = run(["revoke-user", "bob"], cwd=tmp_path)
        assert revoked.returncode == 0 and revoked.stdout.startswith("Revoked 1 grant(s) of bob"), revoked.stderr
        started = time.monotonic()
        while httpx.post(f"{url}/mcp", **call).status_code != 401:
            assert time.monotonic() - started < 1.0, "the running server still accepts bob's token"


def _sign_in_over_http(url: str, login_name: str) -> str:
    """Register, authorize through the consent page and the GitHub stand-in, exchange: an access token."""
    from urllib.parse import urljoin

    from tests.support.forms import parse_forms
    from tests.support.oauth import REDIRECT_URI, pkce, query

    with httpx.Client(base_url=url, timeout=10, follow_redirects=False) as browser:
        registered = browser.post("/register", json={"client_name": "CLI test", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"})
        client_id = registered.json()["client_id"]
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
            "resource": f"{url}/mcp",
        }
        location = str(browser.get("/authorize", params=params).headers["location"])
        for _ in range(10):
            if location.startswith(REDIRECT_URI):
                break
            page = browser.get(location)
            if page.is_redirect:
                location = urljoin(location, page.headers["location"])
                continue
            form = parse_forms(page.text)[0]
            data = {**form.fields, "decision": "approve"} if "csrf" in form.fields else {**form.fields, "login": login_name, "decision": "authorize"}
            location = urljoin(location, browser.post(urljoin(location, form.action), data=data).headers["location"])
        token = browser.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": query(location)["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "client_id": client_id,
                "resource": f"{url}/mcp",
            },
        )
        return str(token.json()["access_token"])
