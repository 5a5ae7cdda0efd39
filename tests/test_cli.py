"""The command line as users run it: a real process, real port, real signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process import ROOT, clean_env, serving
from tests.support.server import free_port


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
        # /mcp is not this transport's endpoint: no OAuth challenge that could never succeed.
        assert httpx.post(f"{url}/mcp").status_code == 404


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


def main_py(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=60)


def test_every_configuration_mistake_is_named_with_its_variable_and_source_at_once(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTH_MCP_ACCESS_TOKEN_TTL=abc\nAUTH_MCP_DATABSE_URL=sqlite:///x.db\n")
    result = main_py(["--port", "99999"], tmp_path, AUTH_MCP_LOG_LEVEL="debug", AUTH_MCP_ALLOWED_ORIGINS="localhost:6274")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    for line in (
        "  - --port 99999: must be at most 65535",
        "  - AUTH_MCP_ACCESS_TOKEN_TTL=abc (from .env): must be a whole number",
        "  - AUTH_MCP_ALLOWED_ORIGINS: 'localhost:6274' is not an origin; write it as the browser sends it, "
        "scheme included: http://localhost:6274 (from the environment)",
    ):
        assert line in result.stderr.splitlines(), result.stderr
    assert "LOG_LEVEL" not in result.stderr  # lower case is fine
    assert "  - AUTH_MCP_DATABSE_URL (in .env) is not an auth-mcp setting and is ignored; did you mean AUTH_MCP_DATABASE_URL?" in result.stderr


def test_a_misspelt_setting_is_named_with_the_intended_one(tmp_path: Path) -> None:
    result = main_py(["purge"], tmp_path, AUTH_MCP_GITHUB_CLIENTID="Ov23li")
    assert result.returncode == 0
    assert "AUTH_MCP_GITHUB_CLIENTID (in the environment) is not an auth-mcp setting and is ignored; did you mean AUTH_MCP_GITHUB_CLIENT_ID?" in result.stderr


def test_a_public_listener_with_github_and_no_server_url_is_warned_about_its_localhost_issuer(tmp_path: Path) -> None:
    with serving("--host", "0.0.0.0", cwd=tmp_path, AUTH_MCP_GITHUB_CLIENT_ID="Ov23li", AUTH_MCP_GITHUB_CLIENT_SECRET="s") as (process, url):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        output = process.stdout.read() if process.stdout else ""
    assert f"listening on 0.0.0.0 but AUTH_MCP_SERVER_URL is not set, so the issuer that clients must reach is {url}" in output


def test_the_server_names_one_url_for_clients_and_not_uvicorns_socket(tmp_path: Path) -> None:
    with serving(cwd=tmp_path) as (process, url):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        output = process.stdout.read() if process.stdout else ""
    assert f"auth-mcp is ready: connect MCP clients to {url}/mcp" in output
    assert "Uvicorn running on" not in output


SECRET = {"AUTH_MCP_SECRET_KEY": "k" * 40}


def _refusal(tmp_path: Path, database_url: str) -> str:
    result = main_py([], tmp_path, AUTH_MCP_DATABASE_URL=database_url, **({} if database_url.startswith("sqlite") else SECRET))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


def test_nothing_listening_at_the_postgresql_address_is_a_sentence(tmp_path: Path) -> None:
    port = free_port()
    assert _refusal(tmp_path, f"postgres://postgres@127.0.0.1:{port}/test") == (
        f"auth-mcp cannot open its database: nothing is listening at 127.0.0.1:{port}, where AUTH_MCP_DATABASE_URL "
        "says PostgreSQL is. Start PostgreSQL there, or correct the host and port."
    )


def test_an_unknown_database_or_role_is_a_sentence_naming_it(tmp_path: Path) -> None:
    unknown_database = _refusal(tmp_path, "postgresql://postgres@127.0.0.1:5432/no_such_database")
    assert unknown_database.startswith('auth-mcp cannot open its database: PostgreSQL at 127.0.0.1:5432 has no database "no_such_database". Create it')
    unknown_role = _refusal(tmp_path, "postgresql+psycopg://no_such_role@127.0.0.1:5432/test")
    assert unknown_role.startswith('auth-mcp cannot open its database: PostgreSQL at 127.0.0.1:5432 has no role "no_such_role"')


def test_sslmode_require_against_a_server_without_tls_is_a_sentence(tmp_path: Path) -> None:
    refusal = _refusal(tmp_path, "postgres://postgres@127.0.0.1:5432/test?sslmode=require")
    assert "PostgreSQL at 127.0.0.1:5432 does not offer TLS, but AUTH_MCP_DATABASE_URL asks for it" in refusal


def test_a_sqlite_path_in_a_missing_directory_is_a_sentence(tmp_path: Path) -> None:
    refusal = _refusal(tmp_path, f"sqlite:///{tmp_path}/missing/auth.db")
    assert refusal == (
        f"auth-mcp cannot open its database: the SQLite database {tmp_path}/missing/auth.db cannot be created: the directory "
        f"{tmp_path}/missing does not exist. Create it, or point AUTH_MCP_DATABASE_URL at an existing directory."
    )


def test_a_sqlite_path_in_a_read_only_directory_is_a_sentence(tmp_path: Path) -> None:
    # As root a read-only directory is still writable: run the server as nobody (setpriv), in a
    # directory nobody can reach but not write.
    base = Path(tempfile.mkdtemp(prefix="auth-mcp-ro-", dir="/tmp"))
    try:
        read_only = base / "ro"
        read_only.mkdir()
        base.chmod(0o755)
        read_only.chmod(0o555)
        command = [sys.executable, str(ROOT / "main.py")]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        result = subprocess.run(
            command, cwd=read_only, env=clean_env(AUTH_MCP_DATABASE_URL=f"sqlite:///{read_only}/auth.db"), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == (
            f"auth-mcp cannot open its database: the SQLite database {read_only}/auth.db cannot be opened: the directory "
            f"{read_only} is not writable by this user (uid {65534 if os.geteuid() == 0 else os.geteuid()}), and SQLite needs "
            "to create files beside the database. Make it writable, or point AUTH_MCP_DATABASE_URL at a directory this user can write."
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
