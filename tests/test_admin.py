"""Operator commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from auth_mcp import admin
from tests.support.oauth import call_tool, login, new_client
from tests.support.server import in_process

ROOT = Path(__file__).resolve().parents[1]


async def test_an_operator_lists_grants_and_revokes_a_person_everywhere(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Ops Client")
        _, alice_one = await login(env, client, login="alice")
        _, alice_two = await login(env, login="alice")
        _, bob = await login(env, client, login="bob")
        listing = "\n".join(await admin.list_grants(env.services, "ALICE"))
        assert listing.count("alice (") == 2 and "bob" not in listing
        assert (await admin.revoke_person(env.services, "alice")) == ["revoked 2 grant(s) of alice"]
        for token in (alice_one.access_token, alice_two.access_token):
            assert (await call_tool(env, token, "whoami")).status_code == 401
        assert (await call_tool(env, bob.access_token, "whoami")).status_code == 200
        github = env.services.dev_github
        assert github is not None
        assert github.calls.count(("DELETE", "/applications/auth-mcp-dev/token")) == 2


async def test_deleting_a_client_revokes_what_was_granted_through_it(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Doomed")
        _, tokens = await login(env, client, login="carol")
        assert any("Doomed" in line for line in await admin.list_clients(env.services))
        assert await admin.delete_client(env.services, client.client_id) == [
            f"deleted client {client.client_id} and revoked 1 grant(s)"
        ]
        assert (await call_tool(env, tokens.access_token, "whoami")).status_code == 401
        assert await env.services.store.get_client(client.client_id) is None
        assert await admin.delete_client(env.services, "nope") == ["no client nope"]
        assert (await admin.purge(env.services))[0].startswith("purged ")


def test_the_admin_commands_run_from_the_command_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AUTH_MCP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"}
    for args, expected in ((["clients", "list"], "client_id"), (["grants", "list"], "GitHub user"), (["purge"], "purged 0")):
        result = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
