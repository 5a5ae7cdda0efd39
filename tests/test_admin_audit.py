"""`auth-mcp audit`: the trail of tool calls for an operator, as a table or JSON, with its filters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from auth_mcp import admin
from auth_mcp.storage.audit import AuditQuery
from tests.support.oauth import call_tool, login
from tests.support.server import in_process

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "AUTH_MCP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


async def record_calls(tmp_path: Path) -> None:
    async with in_process(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") as env:
        _, alice = await login(env, login="alice")
        _, bob = await login(env, login="bob")
        await call_tool(env, alice.access_token, "whoami")
        await call_tool(env, bob.access_token, "whoami")
        await call_tool(env, bob.access_token, "no_such_tool")
        await env.services.audit.recorder.flush()
        operator = admin.Operator(store=env.services.store, revoker=env.services.revoker, purger=env.services.purger, audit=env.services.audit.store)
        report = await admin.audit_trail(operator, AuditQuery(outcome="refused"))
        assert report.data == [] and report.lines[0].startswith("time (UTC)")  # the header alone


async def test_the_audit_command_prints_a_table_and_json_with_filters(tmp_path: Path) -> None:
    await record_calls(tmp_path)
    table = run(tmp_path, "audit")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["time", "(UTC)", "GitHub"] and len(rows) == 5  # header, rule, 3 calls
    assert "bob (" in rows[2] and "no_such_tool" in rows[2] and "tool_error" in rows[2]
    as_json = run(tmp_path, "audit", "--user", "bob", "--tool", "WHO*", "--since", "1h", "--json")
    assert as_json.returncode == 0, as_json.stderr
    [event] = json.loads(as_json.stdout)
    assert (event["github_login"], event["tool"], event["outcome"], event["upstream"]) == ("bob", "whoami", "ok", "builtin")
    assert event["client_name"] == "Test client" and "arguments" not in event


def test_bad_options_exit_2_with_a_sentence(tmp_path: Path) -> None:
    for args, words in (
        (["--since", "yesterday"], "give a duration such as 30m"),
        (["--outcome", "fine"], "invalid choice"),
        (["--limit", "0"], "from 1 to 100000"),
    ):
        result = run(tmp_path, "audit", *args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
