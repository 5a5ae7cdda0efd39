from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from auth_mcp.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_with_no_configuration_it_is_dev_mode_on_localhost_with_sqlite() -> None:
    config = settings()
    assert config.dev_mode
    assert config.issuer == "http://localhost:8000"
    assert config.host == "127.0.0.1"
    assert config.transport == "streamable-http"
    assert config.access_token_ttl == 3600
    assert config.is_sqlite and str(config.sqlite_path) == "auth-mcp.db"


def test_the_default_server_url_follows_the_port() -> None:
    assert settings(port=9123).issuer == "http://localhost:9123"


def test_the_issuer_is_exactly_the_server_url_without_a_trailing_slash() -> None:
    config = settings(server_url="https://mcp.example.com/", github_client_id="id", github_client_secret="s")
    assert config.issuer == "https://mcp.example.com"


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MCP_ALLOWED_USERS", "alice, 12345 ,bob")
    monkeypatch.setenv("AUTH_MCP_ALLOWED_ORGS", "acme")
    monkeypatch.setenv("AUTH_MCP_ACCESS_TOKEN_TTL", "600")
    config = settings()
    assert config.allowed_users == ["alice", "12345", "bob"]
    assert config.allowed_orgs == ["acme"]
    assert config.access_token_ttl == 600


def test_the_dotenv_file_is_read(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("AUTH_MCP_PORT=9999\nAUTH_MCP_ALLOWED_ORGS=acme,globex\n")
    monkeypatch.chdir(tmp_path)
    config = Settings()
    assert config.port == 9999
    assert config.allowed_orgs == ["acme", "globex"]


def test_secrets_never_show_in_the_repr() -> None:
    config = settings(github_client_id="id", github_client_secret="very-secret-value", server_url="http://127.0.0.1:1")
    assert "very-secret-value" not in repr(config)
    assert "very-secret-value" not in str(config.model_dump())


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"github_client_id": "only-the-id"}, "must be set together"),
        ({"github_client_secret": "only-the-secret"}, "must be set together"),
        (
            {"server_url": "http://mcp.example.com", "github_client_id": "i", "github_client_secret": "s"},
            "must use https://",
        ),
        ({"server_url": "https://mcp.example.com/base", "github_client_id": "i", "github_client_secret": "s"}, "without path"),
        ({"server_url": "https://mcp.example.com"}, "dev mode"),
        ({"host": "0.0.0.0"}, "non-loopback address"),
        ({"database_url": "mysql://x/y"}, "AUTH_MCP_DATABASE_URL"),
        ({"database_url": "postgresql+asyncpg://u@h/db"}, "AUTH_MCP_SECRET_KEY is required"),
        ({"secret_key": "short"}, "at least 32 characters"),
        ({"trusted_proxies": "not-an-ip"}, "AUTH_MCP_TRUSTED_PROXIES"),
    ],
)
def test_bad_configuration_is_refused_with_a_sentence_to_act_on(values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    assert fragment in str(caught.value)


def test_github_mode_may_listen_anywhere_behind_https() -> None:
    config = settings(
        server_url="https://mcp.example.com", host="0.0.0.0", github_client_id="i", github_client_secret="s"
    )
    assert not config.dev_mode
