"""AUTH_MCP_ALLOWED_USERS entries say whether they are an id or a login: `id:123`, `login:123`;
a bare number is an id and a bare name a login, as before."""

from __future__ import annotations

import pytest

from auth_mcp.authorization.access_policy import AccessPolicy
from auth_mcp.github.devserver import user_id_for
from tests.support.oauth import authorize, new_client
from tests.support.server import in_process


async def _let_in(db_url: str, allowed_users: str, login: str) -> bool:
    async with in_process(database_url=db_url, allowed_users=allowed_users) as env:
        result, _ = await authorize(env, await new_client(env), browser=env.browser(login=login))
        return "code" in result


async def test_a_numeric_login_is_allowed_when_written_as_a_login(db_url: str) -> None:
    assert await _let_in(db_url, "login:1234", "1234")
    assert not await _let_in(db_url, "1234", "1234")  # a bare number is an id, not that login
    assert await _let_in(db_url, f"id:{user_id_for('1234')}", "1234")
    assert await _let_in(db_url, "LOGIN:Alice", "alice")


@pytest.mark.parametrize("entry", ["id:abc", "id:", "login:", "uid:5", "login:bad name"])
def test_entries_that_are_neither_an_id_nor_a_login_stop_start_up_with_a_sentence(entry: str) -> None:
    with pytest.raises(ValueError, match="AUTH_MCP_ALLOWED_USERS"):
        AccessPolicy(allowed_users=[entry], allowed_orgs=[])
