"""The verification cache: bounded, revocation-aware, never serving what it should not."""

from __future__ import annotations

from tests.support.oauth import call_tool, login
from tests.support.server import in_process


async def test_cache_entries_older_than_their_lifetime_are_dropped_not_hoarded(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        verifier = env.services.verifier
        tokens = []
        for name in ("a", "b", "c"):
            _, issued = await login(env, login=name)
            tokens.append(issued.access_token)
            assert (await call_tool(env, issued.access_token, "whoami")).status_code == 200
        assert verifier.cached == 3
        env.clock.advance(31)
        _, fresh = await login(env, login="d")
        assert (await call_tool(env, fresh.access_token, "whoami")).status_code == 200
        assert verifier.cached == 1
        # The dropped ones still verify: from the database again.
        assert (await call_tool(env, tokens[0], "whoami")).status_code == 200
