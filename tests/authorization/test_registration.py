"""/register answers carry credentials: they must not be cached (RFC 6749 §5.1 by analogy,
RFC 7591 §3.2.1 returns the client secret in that answer)."""

from __future__ import annotations

from tests.support.oauth import register
from tests.support.server import in_process


async def test_a_registration_answer_with_a_secret_is_not_cacheable(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        confidential = await register(env.http, auth_method="client_secret_post")
        assert confidential.status_code == 201 and confidential.json()["client_secret"]
        assert confidential.headers["cache-control"] == "no-store"
        public = await register(env.http)
        assert public.headers["cache-control"] == "no-store"
