"""RFC 6749 §6: a refresh that asks for fewer scopes narrows that access token only; the new
refresh token keeps the scope of the one it replaces.

Measured on main before the fix: one narrowed refresh narrowed the grant for good."""

from __future__ import annotations

from tests.support.oauth import call_tool, login, refresh
from tests.support.server import in_process


async def test_a_narrowed_refresh_does_not_narrow_the_grant(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env, scope="read:user user:email")
        narrowed = await refresh(env, client, tokens.refresh_token, scope="read:user")
        assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read:user"
        assert (await call_tool(env, narrowed.json()["access_token"], "get_user_emails")).status_code == 403
        widened_back = await refresh(env, client, narrowed.json()["refresh_token"], scope="read:user user:email")
        assert widened_back.status_code == 200 and widened_back.json()["scope"] == "read:user user:email"
        plain = await refresh(env, client, widened_back.json()["refresh_token"])
        assert plain.json()["scope"] == "read:user user:email"
        beyond = await refresh(env, client, plain.json()["refresh_token"], scope="read:user read:org")
        assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"
