"""The command line as users run it: a real process, real port, real signals."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process import ROOT, clean_env, serving


def test_with_no_configuration_main_py_serves_dev_mode_and_stops_cleanly(tmp_path: Path) -> None:
    with serving(cwd=tmp_path) as (process, url):
        metadata = httpx.get(f"{url}/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == url
        assert httpx.post(f"{url}/mcp").status_code == 401
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so supervisors see why it ended.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
        output = process.stdout.read() if process.stdout else ""
    assert "Application shutdown complete" in output
    assert f"serving {url}/mcp over streamable-http" in output
    assert "store sqlite+aiosqlite:///auth-mcp.db" in output and "mode dev" in output
    assert "DEV MODE" in output
    assert (tmp_path / "auth-mcp.db").exists()
    key = tmp_path / "auth-mcp.db.key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_lets_a_request_in_flight_finish_and_takes_no_new_connections(tmp_path: Path) -> None:
    with serving(cwd=tmp_path) as (process, url):
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps({"client_name": "late", "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}).encode()
        head = (
            f"POST /register HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode())
            # uvicorn answers 100 Continue when the app asks for the body: the request is in flight.
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # shutdown has begun once the listener is gone
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except ConnectionRefusedError:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the server still accepted connections 10 s after SIGTERM")
            assert process.poll() is None, "the server exited with a request in flight"
            sock.sendall(body)
            response = _read_until_closed(sock)
        status_line, _, rest = response.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 201 Created", response[:500]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["client_name"] == "late"
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    # What the request wrote is there after the shutdown.
    with sqlite3.connect(tmp_path / "auth-mcp.db") as db:
        assert db.execute("SELECT count(*) FROM clients").fetchone() == (1,)


def test_the_transport_flag_switches_to_sse(tmp_path: Path) -> None:
    with serving("--transport", "sse", cwd=tmp_path) as (_, url):
        assert httpx.get(f"{url}/.well-known/oauth-protected-resource/sse").json()["resource"] == f"{url}/sse"
        assert httpx.get(f"{url}/sse").status_code == 401


def test_python_dash_m_and_the_console_script_start_the_same_server(tmp_path: Path) -> None:
    for command in ([sys.executable, "-m", "auth_mcp", "--help"], [str(Path(sys.executable).with_name("auth-mcp")), "--help"]):
        result = subprocess.run(command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "--transport" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--host", "0.0.0.0"], {}, "dev mode refuses to listen on the non-loopback address"),
        ([], {"AUTH_MCP_SERVER_URL": "https://mcp.example.com"}, "dev mode"),
        ([], {"AUTH_MCP_GITHUB_CLIENT_ID": "only-id"}, "must be set together"),
        ([], {"AUTH_MCP_SERVER_URL": "http://mcp.example.com", "AUTH_MCP_GITHUB_CLIENT_ID": "i", "AUTH_MCP_GITHUB_CLIENT_SECRET": "s"}, "https://"),
    ],
)
def test_bad_configuration_stops_start_up_with_a_sentence(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "db", "upgrade"],
        cwd=tmp_path,
        env=clean_env(AUTH_MCP_DATABASE_URL=f"sqlite+aiosqlite:///{database}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"clients", "grants", "access_tokens", "refresh_tokens", "authorization_codes", "alembic_version"} <= tables


def test_the_server_refuses_an_outdated_postgresql_schema_until_db_upgrade(tmp_path: Path, postgres_url: str) -> None:
    import asyncio

    from auth_mcp.storage.engine import create_engine
    from auth_mcp.storage.migrate import schema_status, upgrade

    async def at(revision: str | None) -> str:
        engine = create_engine(postgres_url)
        try:
            if revision:
                await upgrade(engine, revision)
            return (await schema_status(engine)).state
        finally:
            await engine.dispose()

    assert asyncio.run(at("0001")) == "outdated"
    env = {"AUTH_MCP_DATABASE_URL": postgres_url, "AUTH_MCP_SECRET_KEY": "k" * 40}
    refused = subprocess.run(
        [sys.executable, str(ROOT / "main.py")], cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "auth-mcp db upgrade" in refused.stderr and "Traceback" not in refused.stderr
    upgraded = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "db", "upgrade"], cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert asyncio.run(at(None)) == "current"
