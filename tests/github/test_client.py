"""The GitHub client against GitHub faked at the HTTP edge (respx)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from pydantic import SecretStr

from auth_mcp.github.client import API_VERSION, GitHubClient
from auth_mcp.github.models import (
    GitHubForbidden,
    GitHubNotFound,
    GitHubOAuthError,
    GitHubRateLimited,
    GitHubUnauthorized,
    GitHubUnavailable,
    GitHubUser,
)
from tests.support.clock import FakeClock

WEB = "https://github.example"
API = "https://api.github.example"
NOW = 1_800_000_000


@pytest.fixture
async def github() -> AsyncIterator[GitHubClient]:
    async with httpx.AsyncClient() as http:
        yield GitHubClient(
            http=http,
            web_url=WEB,
            api_url=API,
            client_id="app-id",
            client_secret=SecretStr("app-secret"),
            clock=FakeClock(NOW),
        )


@respx.mock
async def test_a_code_is_exchanged_with_our_pkce_verifier_and_credentials(github: GitHubClient) -> None:
    route = respx.post(f"{WEB}/login/oauth/access_token").respond(
        json={"access_token": "gho_abc", "token_type": "bearer", "scope": "read:user,user:email"}
    )
    tokens = await github.exchange_code(code="the-code", redirect_uri="https://mcp/cb", code_verifier="verifier")
    assert tokens.access_token.get_secret_value() == "gho_abc"
    assert tokens.scopes == ("read:user", "user:email")
    assert tokens.refresh_token is None and tokens.expires_in is None
    sent = dict(httpx.QueryParams(route.calls.last.request.content.decode()))
    assert sent == {
        "client_id": "app-id",
        "client_secret": "app-secret",
        "code": "the-code",
        "redirect_uri": "https://mcp/cb",
        "code_verifier": "verifier",
    }
    assert route.calls.last.request.headers["accept"] == "application/json"


@respx.mock
async def test_expiring_tokens_come_with_a_refresh_token(github: GitHubClient) -> None:
    respx.post(f"{WEB}/login/oauth/access_token").respond(
        json={
            "access_token": "ghu_x",
            "expires_in": 28800,
            "refresh_token": "ghr_y",
            "refresh_token_expires_in": 15811200,
            "scope": "",
            "token_type": "bearer",
        }
    )
    tokens = await github.refresh("ghr_old")
    assert tokens.expires_in == 28800
    assert tokens.refresh_token is not None and tokens.refresh_token.get_secret_value() == "ghr_y"
    assert tokens.refresh_token_expires_in == 15811200


@respx.mock
async def test_an_error_in_an_http_200_body_is_an_error(github: GitHubClient) -> None:
    respx.post(f"{WEB}/login/oauth/access_token").respond(
        200, json={"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
    )
    with pytest.raises(GitHubOAuthError) as caught:
        await github.exchange_code(code="c", redirect_uri="r", code_verifier="v")
    assert caught.value.error == "bad_verification_code"


@respx.mock
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_github_5xx_is_unavailability(github: GitHubClient, status: int) -> None:
    respx.post(f"{WEB}/login/oauth/access_token").respond(status, text="<html>unicorn</html>")
    with pytest.raises(GitHubUnavailable, match=str(status)):
        await github.exchange_code(code="c", redirect_uri="r", code_verifier="v")


@respx.mock
async def test_a_timeout_is_unavailability(github: GitHubClient) -> None:
    respx.post(f"{WEB}/login/oauth/access_token").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(GitHubUnavailable, match="in time"):
        await github.exchange_code(code="c", redirect_uri="r", code_verifier="v")


@respx.mock
async def test_a_non_json_200_is_not_taken_for_a_token(github: GitHubClient) -> None:
    respx.post(f"{WEB}/login/oauth/access_token").respond(200, text="access_token=gho_x&scope=")
    with pytest.raises(GitHubUnavailable):
        await github.exchange_code(code="c", redirect_uri="r", code_verifier="v")


@respx.mock
async def test_every_api_call_identifies_itself_and_pins_the_api_version(github: GitHubClient) -> None:
    route = respx.get(f"{API}/user").respond(json={"id": 1, "login": "octocat"})
    user = await github.get_user("gho_token")
    assert (user.id, user.login) == (1, "octocat")
    headers = route.calls.last.request.headers
    assert headers["user-agent"].startswith("auth-mcp/")
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == API_VERSION
    assert headers["authorization"] == "Bearer gho_token"


@respx.mock
async def test_github_fields_are_kept_as_github_names_them(github: GitHubClient) -> None:
    respx.get(f"{API}/user").respond(json={"id": 7, "login": "x", "avatar_url": "a", "public_repos": 3})
    user = await github.get_user("t")
    assert user.model_dump()["avatar_url"] == "a" and user.model_dump()["public_repos"] == 3


@respx.mock
async def test_a_401_means_the_token_is_dead(github: GitHubClient) -> None:
    respx.get(f"{API}/user").respond(401, json={"message": "Bad credentials"})
    with pytest.raises(GitHubUnauthorized):
        await github.get_user("gho_revoked")


@respx.mock
async def test_a_repeated_read_is_conditional_and_a_304_reuses_the_cached_body(github: GitHubClient) -> None:
    route = respx.get(f"{API}/user")
    route.side_effect = [
        httpx.Response(200, json={"id": 1, "login": "octocat"}, headers={"etag": 'W/"abc"'}),
        httpx.Response(304, headers={"etag": 'W/"abc"'}),
    ]
    first = await github.get_json("gho_a", "/user")
    second = await github.get_json("gho_a", "/user")
    assert first == second == {"id": 1, "login": "octocat"}
    assert "if-none-match" not in route.calls[0].request.headers
    assert route.calls[1].request.headers["if-none-match"] == 'W/"abc"'


@respx.mock
async def test_etags_are_never_shared_between_tokens(github: GitHubClient) -> None:
    route = respx.get(f"{API}/user").respond(200, json={"id": 1, "login": "a"}, headers={"etag": '"same"'})
    await github.get_json("gho_alice", "/user")
    await github.get_json("gho_bob", "/user")
    assert "if-none-match" not in route.calls[1].request.headers


@respx.mock
async def test_a_304_answers_with_the_model_parsed_before_and_a_changed_body_is_parsed_anew(github: GitHubClient) -> None:
    route = respx.get(f"{API}/user")
    route.side_effect = [
        httpx.Response(200, json={"id": 1, "login": "octocat"}, headers={"etag": 'W/"v1"'}),
        httpx.Response(304, headers={"etag": 'W/"v1"'}),
        httpx.Response(200, json={"id": 1, "login": "octocat", "name": "Mona"}, headers={"etag": 'W/"v2"'}),
        httpx.Response(304, headers={"etag": 'W/"v2"'}),
    ]
    first = await github.get_model("gho_a", "/user", GitHubUser)
    confirmed = await github.get_model("gho_a", "/user", GitHubUser)
    assert confirmed is first  # GitHub said unchanged: the model parsed from the 200 answers
    changed = await github.get_model("gho_a", "/user", GitHubUser)
    assert changed.name == "Mona" and first.name is None
    assert (await github.get_model("gho_a", "/user", GitHubUser)) is changed
    assert route.calls[3].request.headers["if-none-match"] == 'W/"v2"'


@respx.mock
async def test_parsed_models_are_never_shared_between_tokens(github: GitHubClient) -> None:
    # Both answers carry the same ETag: only the token tells them apart.
    route = respx.get(f"{API}/user")
    route.side_effect = [
        httpx.Response(200, json={"id": 1, "login": "alice"}, headers={"etag": '"same"'}),
        httpx.Response(200, json={"id": 2, "login": "bob"}, headers={"etag": '"same"'}),
        httpx.Response(304, headers={"etag": '"same"'}),
        httpx.Response(304, headers={"etag": '"same"'}),
    ]
    assert (await github.get_model("gho_alice", "/user", GitHubUser)).login == "alice"
    assert (await github.get_model("gho_bob", "/user", GitHubUser)).login == "bob"
    assert "if-none-match" not in route.calls[1].request.headers
    assert (await github.get_model("gho_alice", "/user", GitHubUser)).login == "alice"
    assert (await github.get_model("gho_bob", "/user", GitHubUser)).login == "bob"


@respx.mock
async def test_a_body_that_does_not_fit_the_model_is_unavailability_not_a_crash(github: GitHubClient) -> None:
    respx.get(f"{API}/user").respond(200, json={"login": "octocat"}, headers={"etag": '"x"'})  # no id
    with pytest.raises(GitHubUnavailable, match="cannot read"):
        await github.get_model("gho_a", "/user", GitHubUser)


@respx.mock
async def test_an_exhausted_primary_rate_limit_says_when_to_retry(github: GitHubClient) -> None:
    respx.get(f"{API}/user").respond(
        403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 1200)},
    )
    with pytest.raises(GitHubRateLimited) as caught:
        await github.get_json("t", "/user")
    assert caught.value.retry_at == NOW + 1200
    assert "retry in 1200 seconds" in str(caught.value)


@respx.mock
@pytest.mark.parametrize("status", [403, 429])
async def test_a_secondary_rate_limit_honours_retry_after(github: GitHubClient, status: int) -> None:
    respx.get(f"{API}/user").respond(
        status, json={"message": "You have exceeded a secondary rate limit."}, headers={"retry-after": "30"}
    )
    with pytest.raises(GitHubRateLimited) as caught:
        await github.get_json("t", "/user")
    assert caught.value.secondary and caught.value.retry_at == NOW + 30


@respx.mock
async def test_a_secondary_rate_limit_without_retry_after_waits_a_minute(github: GitHubClient) -> None:
    respx.get(f"{API}/user").respond(403, json={"message": "You have exceeded a secondary rate limit."})
    with pytest.raises(GitHubRateLimited) as caught:
        await github.get_json("t", "/user")
    assert caught.value.retry_at == NOW + 60


@respx.mock
async def test_saml_sso_ip_allow_lists_and_missing_scopes_are_told_apart(github: GitHubClient) -> None:
    respx.get(f"{API}/user/memberships/orgs/sso-org").respond(
        403,
        json={"message": "Resource protected by organization SAML enforcement."},
        headers={"x-github-sso": "required; url=https://github.example/orgs/sso-org/sso?authorization_request=x"},
    )
    respx.get(f"{API}/orgs/ip-org").respond(
        403,
        json={"message": "Although you appear to have the correct authorization credentials, the `ip-org` organization has an IP allow list enabled, and your IP address is not permitted to access this resource."},
    )
    respx.get(f"{API}/user/emails").respond(
        403, json={"message": "Forbidden"}, headers={"x-accepted-oauth-scopes": "user, user:email", "x-oauth-scopes": "read:user"}
    )
    with pytest.raises(GitHubForbidden) as sso:
        await github.get_org_membership("t", "sso-org")
    assert sso.value.reason == "saml_sso" and "https://github.example/orgs/sso-org/sso" in str(sso.value)
    with pytest.raises(GitHubForbidden) as ip:
        await github.get_json("t", "/orgs/ip-org")
    assert ip.value.reason == "ip_allow_list"
    with pytest.raises(GitHubForbidden) as scope:
        await github.get_json("t", "/user/emails")
    assert scope.value.reason == "missing_scope" and "user:email" in str(scope.value)


@respx.mock
async def test_a_missing_org_membership_is_none_not_an_error(github: GitHubClient) -> None:
    respx.get(f"{API}/user/memberships/orgs/acme").respond(404, json={"message": "Not Found"})
    assert await github.get_org_membership("t", "acme") is None
    respx.get(f"{API}/repos/x/y").respond(404, json={"message": "Not Found"})
    with pytest.raises(GitHubNotFound):
        await github.get_json("t", "/repos/x/y")


@respx.mock
async def test_revoking_a_token_uses_the_app_credentials_and_a_json_body(github: GitHubClient) -> None:
    route = respx.delete(f"{API}/applications/app-id/token").respond(204)
    await github.revoke_token("gho_bye")
    request = route.calls.last.request
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"app-id:app-secret").decode()
    assert json.loads(request.content) == {"access_token": "gho_bye"}


@respx.mock
async def test_revoking_a_token_github_already_forgot_is_fine(github: GitHubClient) -> None:
    respx.delete(f"{API}/applications/app-id/token").respond(404, json={"message": "Not Found"})
    await github.revoke_token("gho_gone")


async def test_github_enterprise_server_is_two_base_urls() -> None:
    with respx.mock:
        web = respx.post("https://ghes.example/login/oauth/access_token").respond(json={"access_token": "gho_1", "scope": ""})
        api = respx.get("https://ghes.example/api/v3/user").respond(json={"id": 5, "login": "enterprise"})
        async with httpx.AsyncClient() as http:
            ghes = GitHubClient(
                http=http,
                web_url="https://ghes.example",
                api_url="https://ghes.example/api/v3",
                client_id="i",
                client_secret=SecretStr("s"),
                clock=FakeClock(NOW),
            )
            assert ghes.authorize_url(redirect_uri="r", scopes=["read:user"], state="s", code_challenge="c").startswith(
                "https://ghes.example/login/oauth/authorize?"
            )
            await ghes.exchange_code(code="c", redirect_uri="r", code_verifier="v")
            assert (await ghes.get_user("gho_1")).login == "enterprise"
        assert web.called and api.called


def test_the_authorize_url_asks_for_exactly_the_scopes_with_pkce_s256(github: GitHubClient) -> None:
    url = httpx.URL(github.authorize_url(redirect_uri="https://mcp/cb", scopes=["read:user", "user:email"], state="st", code_challenge="ch"))
    params = dict(url.params)
    assert url.path == "/login/oauth/authorize"
    assert params["scope"] == "read:user user:email"
    assert params["state"] == "st" and params["code_challenge"] == "ch" and params["code_challenge_method"] == "S256"
    assert params["client_id"] == "app-id" and params["redirect_uri"] == "https://mcp/cb"


@respx.mock
async def test_the_metric_label_of_a_call_leaves_out_the_query_string() -> None:
    seen: list[str] = []
    respx.get(f"{API}/user/emails").respond(json=[])
    async with httpx.AsyncClient() as http:
        github = GitHubClient(
            http=http,
            web_url=WEB,
            api_url=API,
            client_id="app-id",
            client_secret=SecretStr("app-secret"),
            clock=FakeClock(NOW),
            observer=lambda label, _status, _remaining: seen.append(label),
        )
        for page_size in (100, 50):
            await github.get_json("gho_abc", f"/user/emails?per_page={page_size}")
    assert seen == ["user.emails", "user.emails"]
