"""Database URLs as providers hand them out, understood and connected with our drivers."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from auth_mcp.storage.database_url import (
    DatabaseUrlError,
    database_target,
    normalise_database_url,
    postgres_connection,
)
from auth_mcp.storage.engine import create_engine
from tests.support.process import ROOT, clean_env
from tests.support.tls_postgres import tls_postgres


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example.com:5432/app", "postgresql+asyncpg://u:p@db.example.com:5432/app"),
        ("postgresql://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////var/lib/auth-mcp/x.db", "sqlite+aiosqlite:////var/lib/auth-mcp/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("SQLite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_every_spelling_providers_hand_out_becomes_our_drivers(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_libpq_ssl_parameters_stay_for_asyncpgs_own_parser_and_sqlalchemys_ssl_becomes_sslmode() -> None:
    url = normalise_database_url("postgres://u:p@h/d?sslmode=verify-full&sslrootcert=/etc/ca.pem&channel_binding=require")
    assert url == "postgresql+asyncpg://u:p@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
    assert normalise_database_url("postgresql://h/d?ssl=require").endswith("?sslmode=require")
    assert normalise_database_url("postgresql://h/d?ssl=true").endswith("?sslmode=require")


def test_connect_timeout_becomes_asyncpgs_timeout_and_leaves_the_dsn() -> None:
    connection = postgres_connection(normalise_database_url("postgres://u:p@h:6543/d?sslmode=require&connect_timeout=7"))
    assert connection.timeout == 7.0
    assert connection.dsn == "postgresql://u:p@h:6543/d?sslmode=require"


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("mysql://u@h/d", "names the database kind 'mysql'"),
        ("auth-mcp.db", "must be a URL such as sqlite:///auth-mcp.db"),
        ("postgres://h/d?sslmode=required", "sslmode='required'; PostgreSQL's modes are disable, allow, prefer"),
        ("postgres://h/d?schema=public&pgbouncer=true", "pgbouncer, schema, which auth-mcp's PostgreSQL driver does not"),
        ("postgres://h/d?connect_timeout=soon", "connect_timeout='soon'"),
    ],
)
def test_urls_we_cannot_use_are_refused_with_a_sentence_naming_the_variable(given: str, words: str) -> None:
    with pytest.raises(DatabaseUrlError) as refused:
        normalise_database_url(given)
    assert "AUTH_MCP_DATABASE_URL" in str(refused.value)
    assert words in str(refused.value)


def test_a_refusal_never_shows_the_password() -> None:
    for url in ("mysql://u:hunter2@h/d", "postgres://u:hunter2@h/d?sslmode=on", "postgres://u:hunter2@h/d?x=1"):
        with pytest.raises(DatabaseUrlError) as refused:
            normalise_database_url(url)
        assert "hunter2" not in str(refused.value)


def test_the_target_names_host_port_database_and_role_or_the_sqlite_path() -> None:
    target = database_target("postgresql+asyncpg://alice:pw@db.internal:6432/app")
    assert (target.host, target.port, target.database, target.user, target.server) == ("db.internal", 6432, "app", "alice", "db.internal:6432")
    assert database_target("sqlite+aiosqlite:///data/auth.db?mode=rwc").path == "data/auth.db"
    assert database_target("sqlite+aiosqlite://").path is None


@pytest.mark.parametrize("sslmode", ["disable", "prefer", "allow"])
async def test_a_provider_style_url_with_sslmode_builds_a_working_engine(postgres_url: str, sslmode: str) -> None:
    parts = urlsplit(postgres_url)
    provider_url = f"postgres://{parts.netloc}{parts.path}?sslmode={sslmode}&connect_timeout=5&application_name=auth-mcp-test"
    engine = create_engine(normalise_database_url(provider_url))
    try:
        async with engine.connect() as connection:
            name = (await connection.execute(text("SELECT current_setting('application_name')"))).scalar()
            ssl_used = (await connection.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))).scalar()
    finally:
        await engine.dispose()
    assert name == "auth-mcp-test"
    assert ssl_used is False  # the local server offers no TLS; prefer and allow fall back to plain


async def test_sslmode_require_against_a_server_without_tls_is_refused_by_the_driver(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    engine = create_engine(normalise_database_url(f"postgresql://{parts.netloc}{parts.path}?sslmode=require"))
    try:
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


async def _ssl_in_use(url: str) -> bool:
    engine = create_engine(normalise_database_url(url))
    try:
        async with engine.connect() as connection:
            return bool((await connection.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))).scalar())
    finally:
        await engine.dispose()


async def test_sslmode_and_sslrootcert_reach_the_driver_against_a_server_with_tls() -> None:
    with tls_postgres() as server:
        assert await _ssl_in_use(server.url("sslmode=require"))
        assert await _ssl_in_use(server.url(f"sslmode=verify-full&sslrootcert={server.ca}"))
        assert await _ssl_in_use(server.url(f"ssl=verify-ca&sslrootcert={server.ca}"))
        assert not await _ssl_in_use(server.url("sslmode=disable"))
        with pytest.raises(ssl.SSLCertVerificationError):
            await _ssl_in_use(server.url(f"sslmode=verify-full&sslrootcert={server.other_ca}"))


def test_tls_verification_problems_are_sentences_naming_sslrootcert(tmp_path: Path) -> None:
    def refusal(url: str) -> str:
        env = clean_env(AUTH_MCP_SECRET_KEY="k" * 40, AUTH_MCP_DATABASE_URL=url, HOME=str(tmp_path))
        result = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        return result.stderr.strip()

    with tls_postgres() as server:
        where = f"PostgreSQL at 127.0.0.1:{server.port}"
        wrong_ca = refusal(server.url(f"sslmode=verify-full&sslrootcert={server.other_ca}"))
        no_ca = refusal(server.url("sslmode=verify-full"))
        missing_file = refusal(server.url(f"sslmode=verify-ca&sslrootcert={tmp_path}/nowhere.pem"))
    assert wrong_ca.startswith(f"auth-mcp cannot open its database: the TLS certificate of {where} could not be verified")
    assert "sslrootcert=/path/to/ca.pem" in wrong_ca
    assert no_ca.startswith(
        f"auth-mcp cannot open its database: AUTH_MCP_DATABASE_URL asks to verify the certificate of {where} "
        "(sslmode verify-ca or verify-full) but names no CA certificate"
    )
    assert missing_file.startswith(
        "auth-mcp cannot open its database: a certificate or key file named in AUTH_MCP_DATABASE_URL "
        "(sslrootcert, sslcert or sslkey) cannot be read: No such file or directory."
    )
