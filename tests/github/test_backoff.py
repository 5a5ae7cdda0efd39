"""GitHub's rate limits respected: once GitHub says "limited", no call for that person reaches it
before the time it gave (GitHub faked at the HTTP edge with respx, which counts the calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from pydantic import SecretStr

from auth_mcp.github.client import ETAG_FRESH_FOR, GitHubClient
from auth_mcp.github.models import GitHubRateLimited
from tests.support.clock import FakeClock

API = "https://api.github.example"
NOW = 1_800_000_000
PROFILE = {"login": "octocat", "id": 1}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[GitHubClient]:
    async with httpx.AsyncClient() as http:
        yield GitHubClient(
            http=http,
            web_url="https://github.example",
            api_url=API,
            client_id="app-id",
            client_secret=SecretStr("app-secret"),
            clock=clock,
        )


def exhausted(reset: int) -> httpx.Response:
    return httpx.Response(
        403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )


@respx.mock
async def test_after_a_primary_rate_limit_nothing_is_sent_until_the_reset(github: GitHubClient, clock: FakeClock) -> None:
    route = respx.get(f"{API}/user/emails").mock(return_value=exhausted(NOW + 600))
    for attempt in range(5):
        with pytest.raises(GitHubRateLimited) as raised:
            await github.get_json("gho_a", "/user/emails", person="1")
        assert raised.value.retry_at == NOW + 600
        assert f"retry in {600 - attempt * 10} seconds" in str(raised.value)
        clock.advance(10)
    assert route.call_count == 1  # four calls were held back
    clock.advance(600)
    route.mock(return_value=httpx.Response(200, json=[{"email": "a@example.com"}]))
    assert await github.get_json("gho_a", "/user/emails", person="1") == [{"email": "a@example.com"}]
    assert route.call_count == 2


@respx.mock
async def test_the_limit_holds_for_the_person_across_their_tokens_not_for_others(github: GitHubClient) -> None:
    route = respx.get(f"{API}/user/emails").mock(return_value=exhausted(NOW + 600))
    with pytest.raises(GitHubRateLimited):
        await github.get_json("gho_a", "/user/emails", person="1")
    with pytest.raises(GitHubRateLimited):
        await github.get_json("gho_b", "/user/emails", person="1")  # another grant of the same person
    assert route.call_count == 1
    route.mock(return_value=httpx.Response(200, json=[]))
    assert await github.get_json("gho_c", "/user/emails", person="2") == []
    assert route.call_count == 2


@respx.mock
async def test_a_secondary_limit_waits_for_retry_after(github: GitHubClient, clock: FakeClock) -> None:
    route = respx.get(f"{API}/user/emails").mock(
        return_value=httpx.Response(
            403, json={"message": "You have exceeded a secondary rate limit."}, headers={"retry-after": "30"}
        )
    )
    with pytest.raises(GitHubRateLimited) as raised:
        await github.get_json("gho_a", "/user/emails", person="1")
    assert raised.value.secondary and raised.value.retry_at == NOW + 30
    clock.advance(29)
    with pytest.raises(GitHubRateLimited):
        await github.get_json("gho_a", "/user/emails", person="1")
    assert route.call_count == 1
    clock.advance(1)
    route.mock(return_value=httpx.Response(200, json=[]))
    assert await github.get_json("gho_a", "/user/emails", person="1") == []


@respx.mock
async def test_a_secondary_limit_without_retry_after_waits_at_least_a_minute(github: GitHubClient, clock: FakeClock) -> None:
    route = respx.get(f"{API}/user/emails").mock(return_value=httpx.Response(429, json={"message": "Too many requests"}))
    with pytest.raises(GitHubRateLimited):
        await github.get_json("gho_a", "/user/emails", person="1")
    clock.advance(59)
    with pytest.raises(GitHubRateLimited) as raised:
        await github.get_json("gho_a", "/user/emails", person="1")
    assert "retry in 1 seconds" in str(raised.value)
    assert route.call_count == 1


@respx.mock
async def test_a_fresh_etag_entry_answers_while_limited_and_a_stale_one_does_not(github: GitHubClient, clock: FakeClock) -> None:
    route = respx.get(f"{API}/user").mock(
        return_value=httpx.Response(200, json=PROFILE, headers={"etag": 'W/"v1"', "x-ratelimit-remaining": "10"})
    )
    assert await github.get_json("gho_a", "/user", person="1") == PROFILE
    route.mock(return_value=exhausted(NOW + 3600))
    clock.advance(5)
    assert await github.get_json("gho_a", "/user", person="1") == PROFILE  # limited: the cached copy
    for _ in range(3):
        assert await github.get_json("gho_a", "/user", person="1") == PROFILE
    assert route.call_count == 2
    clock.advance(ETAG_FRESH_FOR)
    with pytest.raises(GitHubRateLimited):
        await github.get_json("gho_a", "/user", person="1")
    assert route.call_count == 2


@respx.mock
async def test_a_success_that_spends_the_last_call_holds_until_the_reset(github: GitHubClient, clock: FakeClock) -> None:
    route = respx.get(f"{API}/user/emails").mock(
        return_value=httpx.Response(200, json=[], headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 120)})
    )
    assert await github.get_json("gho_a", "/user/emails", person="1") == []
    with pytest.raises(GitHubRateLimited):
        await github.get_json("gho_a", "/user/emails", person="1")
    assert route.call_count == 1
    clock.advance(120)
    assert await github.get_json("gho_a", "/user/emails", person="1") == []
    assert route.call_count == 2
