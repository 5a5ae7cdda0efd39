"""Purging an expired grant also revokes its GitHub token at GitHub: nobody can use it any more,
and without this it would stay valid at GitHub (OAuth App tokens never expire) though we forgot it."""

from __future__ import annotations

from tests.support.oauth import login
from tests.support.server import in_process


def _github_deletes(env) -> list[str]:  # type: ignore[no-untyped-def]
    github = env.services.dev_github
    assert github is not None
    return [path for method, path in github.calls if method == "DELETE"]


async def test_purging_an_expired_grant_revokes_its_github_token(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        await login(env)
        await env.services.purger.run_once()
        assert _github_deletes(env) == []  # nothing expired yet
        env.clock.advance(env.settings.refresh_token_ttl + 1)
        counts = await env.services.purger.run_once()
        assert counts.grants == 1
        assert len(_github_deletes(env)) == 1 and _github_deletes(env)[0].endswith("/token")
        assert await env.services.store.list_grants() == []


async def test_purging_leaves_github_alone_when_revocation_is_turned_off(db_url: str) -> None:
    async with in_process(database_url=db_url, revoke_github_tokens=False) as env:
        await login(env)
        env.clock.advance(env.settings.refresh_token_ttl + 1)
        assert (await env.services.purger.run_once()).grants == 1
        assert _github_deletes(env) == []
