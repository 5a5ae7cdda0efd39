"""Per-client-IP limits on the endpoints strangers can call without a token."""

from __future__ import annotations

import httpx

from auth_mcp.http.rate_limit import Limit, TokenBuckets
from tests.support.clock import FakeClock
from tests.support.oauth import register
from tests.support.server import in_process


def client_from(env, address: str) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app, client=(address, 5000)), base_url=env.issuer)


async def test_registration_floods_get_429_with_retry_after_per_address(db_url: str) -> None:
    async with in_process(database_url=db_url, rate_limit_per_minute=120) as env:
        flooder, other = client_from(env, "203.0.113.7"), client_from(env, "198.51.100.1")
        statuses = [(await register(flooder)).status_code for _ in range(3)]
        assert statuses == [201, 201, 429]  # /register gets a sixtieth of the budget
        refused = await register(flooder)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "temporarily_unavailable"
        assert (await register(other)).status_code == 201
        env.clock.advance(30)
        assert (await register(flooder)).status_code == 201


async def test_the_token_and_authorize_endpoints_are_limited_too(db_url: str) -> None:
    async with in_process(database_url=db_url, rate_limit_per_minute=4) as env:
        http = client_from(env, "203.0.113.8")
        token = [(await http.post("/token", data={"grant_type": "x"})).status_code for _ in range(5)]
        assert token[-1] == 429 and 429 not in token[:4]
        authorize = [(await http.get("/authorize")).status_code for _ in range(5)]
        assert authorize[-1] == 429


async def test_forwarded_addresses_count_only_from_trusted_proxies(db_url: str) -> None:
    body = {"client_name": "x", "redirect_uris": ["https://x.example/cb"]}
    async with in_process(database_url=db_url, rate_limit_per_minute=4, trusted_proxies="10.0.0.1") as env:
        untrusted = client_from(env, "203.0.113.9")
        statuses = [
            (await untrusted.post("/register", json=body, headers={"x-forwarded-for": f"192.0.2.{n}"})).status_code
            for n in range(2)
        ]
        assert statuses == [201, 429]  # a forged header bought no fresh budget
        proxy = client_from(env, "10.0.0.1")
        forwarded = [
            (await proxy.post("/register", json=body, headers={"x-forwarded-for": f"192.0.2.{n}"})).status_code
            for n in range(5)
        ]
        assert forwarded == [201] * 5  # behind the trusted proxy, each client has its own budget


def test_buckets_refill_over_time() -> None:
    clock = FakeClock(0)
    buckets = TokenBuckets(clock=clock)
    limit = Limit(per_minute=60)
    assert all(buckets.take(("a", "/x"), limit) == 0 for _ in range(60))
    wait = buckets.take(("a", "/x"), limit)
    assert 0 < wait <= 1
    clock.advance(1)
    assert buckets.take(("a", "/x"), limit) == 0


async def test_a_rate_limited_person_in_a_browser_gets_a_page_and_a_program_gets_json(db_url: str) -> None:
    async with in_process(database_url=db_url, rate_limit_per_minute=2) as env:
        http = client_from(env, "203.0.113.10")
        browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        for _ in range(2):
            await http.get("/account", headers=browser)
        page = await http.get("/account", headers=browser)
        assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
        assert "Too many requests" in page.text and "reload this page" in page.text
        assert int(page.headers["retry-after"]) >= 1 and page.headers["x-frame-options"] == "DENY"
        program = await http.get("/account", headers={"Accept": "application/json"})
        assert program.status_code == 429 and program.json()["error"] == "temporarily_unavailable"
