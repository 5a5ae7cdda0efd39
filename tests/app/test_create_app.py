"""create_app as a library: the tools it serves and the scopes they need."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from auth_mcp import PersonsGitHub, Settings, create_app, scoped_tool
from auth_mcp.tools import BUILTIN_TOOLS
from auth_mcp.tools.loading import ToolLoadingError, load_tools
from tests.support.oauth import call_tool, login
from tests.support.server import in_process


class Repos(BaseModel):
    count: int


@scoped_tool(scopes=("repo",), title="Private repositories")
async def count_private_repos(github: PersonsGitHub) -> Repos:
    """How many private repositories the person has."""
    return Repos(count=(await github.get("/user"))["total_private_repos"])


@scoped_tool(scopes=("read:user",), title="Login length")
async def login_length(github: PersonsGitHub) -> Repos:
    """The length of the person's login."""
    return Repos(count=len((await github.get("/user"))["login"]))


def _settings(db_url: str, **values: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, **values)  # type: ignore[call-arg]


def test_a_tool_needing_a_scope_the_server_does_not_offer_stops_start_up(db_url: str) -> None:
    with pytest.raises(ValueError, match=r"count_private_repos.*needs the scope repo.*does not offer"):
        create_app(_settings(db_url), tools=[count_private_repos])


def test_offering_the_scope_lets_the_tool_in(db_url: str) -> None:
    create_app(_settings(db_url), tools=[count_private_repos], scopes=("read:user", "repo"))


def test_two_tools_with_one_name_stop_start_up(db_url: str) -> None:
    with pytest.raises(ValueError, match="login_length"):
        create_app(_settings(db_url), tools=[login_length, login_length])


async def test_the_given_tools_are_served_and_no_others(db_url: str) -> None:
    async with in_process(database_url=db_url, create={"tools": [login_length]}) as env:
        _, issued = await login(env, login="margaret")
        listed = await call_tool(env, issued.access_token, "login_length")
        assert listed.status_code == 200
        assert listed.json()["result"]["structuredContent"] == {"count": len("margaret")}
        missing = await call_tool(env, issued.access_token, "whoami")
        assert missing.json()["result"]["isError"] is True


def test_tools_named_in_settings_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_tools("auth_mcp.tools:BUILTIN_TOOLS") == BUILTIN_TOOLS
    assert load_tools("auth_mcp.tools.whoami:whoami") == (BUILTIN_TOOLS[1],)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_package.tools:TOOLS", "cannot import 'no_such_package.tools'"),
        ("auth_mcp.tools:NOTHING", "has no 'NOTHING'"),
        ("auth_mcp.tools:__all__", "expected a @scoped_tool function or a non-empty list of them, found list"),
    ],
)
def test_a_wrong_tools_reference_says_what_is_wrong(reference: str, message: str) -> None:
    with pytest.raises(ToolLoadingError, match=f"AUTH_MCP_TOOLS={reference}: .*{message}"):
        load_tools(reference)


def test_a_malformed_tools_setting_names_the_expected_form() -> None:
    with pytest.raises(ValueError, match="tools"):
        Settings(_env_file=None, tools="not a reference")  # type: ignore[call-arg]
