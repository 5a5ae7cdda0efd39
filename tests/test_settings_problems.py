"""Configuration mistakes reported as sentences naming the variable, its source, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_mcp.settings_problems import ConfigurationError, Sources, load_settings, unknown_setting_names


def problems(tmp_path: Path, *, dotenv: str = "", flags: dict[str, object] | None = None) -> list[str]:
    env_file = tmp_path / ".env"
    env_file.write_text(dotenv)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(Sources.read(flags=flags or {}, env_file=env_file), env_file=env_file)
    return refused.value.problems


def test_an_invalid_value_names_its_variable_and_that_it_came_from_dotenv(tmp_path: Path) -> None:
    assert problems(tmp_path, dotenv="AUTH_MCP_ACCESS_TOKEN_TTL=abc\n") == [
        "AUTH_MCP_ACCESS_TOKEN_TTL=abc (from .env): must be a whole number"
    ]


def test_every_mistake_is_reported_at_once_including_the_checks_across_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MCP_METRICS", "maybe")
    monkeypatch.setenv("AUTH_MCP_GITHUB_CLIENT_ID", "Ov23li-only-the-id")
    found = problems(tmp_path, dotenv="AUTH_MCP_ACCESS_TOKEN_TTL=abc\nAUTH_MCP_RATE_LIMIT_PER_MINUTE=-5\n", flags={"port": 99999})
    assert found[:4] == [
        "--port 99999: must be at most 65535",
        "AUTH_MCP_ACCESS_TOKEN_TTL=abc (from .env): must be a whole number",
        "AUTH_MCP_RATE_LIMIT_PER_MINUTE=-5 (from .env): must be at least 0",
        "AUTH_MCP_METRICS=maybe (from the environment): must be true or false",
    ]
    assert any(line.startswith("AUTH_MCP_GITHUB_CLIENT_ID and AUTH_MCP_GITHUB_CLIENT_SECRET must be set together") for line in found)


def test_several_mistakes_across_settings_are_reported_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MCP_GITHUB_CLIENT_ID", "Ov23li-only-the-id")
    monkeypatch.setenv("AUTH_MCP_SERVER_URL", "http://mcp.example.com")
    monkeypatch.setenv("AUTH_MCP_DATABASE_URL", "postgresql://db/app")
    found = problems(tmp_path)
    assert len(found) == 3
    assert "AUTH_MCP_GITHUB_CLIENT_ID and AUTH_MCP_GITHUB_CLIENT_SECRET must be set together" in found[0]
    assert "AUTH_MCP_SERVER_URL must use https://" in found[1]
    assert "AUTH_MCP_SECRET_KEY is required with PostgreSQL" in found[2]


def test_a_secret_value_is_never_repeated(tmp_path: Path) -> None:
    found = problems(tmp_path, dotenv="AUTH_MCP_SECRET_KEY=tooshort-but-secret\n")
    assert found and not any("tooshort-but-secret" in line for line in found)


def test_the_log_level_is_case_insensitive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MCP_LOG_LEVEL", "debug")
    monkeypatch.setenv("AUTH_MCP_LOG_FORMAT", "JSON")
    settings = load_settings(Sources.read(flags={}, env_file=None), env_file=None)
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")


def test_an_allowed_origin_without_a_scheme_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, dotenv="AUTH_MCP_ALLOWED_ORIGINS=localhost:6274\n") == [
        "AUTH_MCP_ALLOWED_ORIGINS: 'localhost:6274' is not an origin; write it as the browser sends it, "
        "scheme included: http://localhost:6274 (from .env)"
    ]


def test_a_database_url_is_normalised_and_a_foreign_one_refused_with_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MCP_DATABASE_URL", "sqlite:///state/auth.db")
    assert load_settings(Sources.read(flags={}, env_file=None), env_file=None).database_url == "sqlite+aiosqlite:///state/auth.db"
    monkeypatch.setenv("AUTH_MCP_DATABASE_URL", "mysql://u:pw@h/d")
    found = problems(tmp_path)
    assert found[0].startswith("AUTH_MCP_DATABASE_URL names the database kind 'mysql'")
    assert found[0].endswith("(from the environment)")


def test_misspelt_names_in_the_environment_and_dotenv_are_named_with_the_likely_intended_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_MCP_GITHUB_CLIENTID", "x")
    monkeypatch.setenv("AUTH_MCP_NONSENSE_THING", "x")
    monkeypatch.setenv("AUTH_MCP_PORT", "8000")
    env_file = tmp_path / ".env"
    env_file.write_text("AUTH_MCP_DATABSE_URL=sqlite:///x.db\n")
    warnings = unknown_setting_names(Sources.read(flags={}, env_file=env_file))
    assert warnings == [
        "AUTH_MCP_GITHUB_CLIENTID (in the environment) is not an auth-mcp setting and is ignored; did you mean AUTH_MCP_GITHUB_CLIENT_ID?",
        "AUTH_MCP_NONSENSE_THING (in the environment) is not an auth-mcp setting and is ignored; see .env.example for the settings",
        "AUTH_MCP_DATABSE_URL (in .env) is not an auth-mcp setting and is ignored; did you mean AUTH_MCP_DATABASE_URL?",
    ]
