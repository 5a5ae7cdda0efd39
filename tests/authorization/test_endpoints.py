"""The authorization server over HTTP: metadata, /register, /authorize, /token, /revoke."""

from __future__ import annotations

import asyncio
import html
import re

import pytest

from tests.support.oauth import (
    REDIRECT_URI,
    authorize,
    authorize_url,
    call_tool,
    exchange,
    login,
    new_client,
    pkce,
    query,
    refresh,
    register,
)
from tests.support.server import IN_PROCESS_URL, in_process

# Metadata ----------------------------------------------------------------------------------------


async def test_metadata_names_the_issuer_exactly_and_what_is_supported(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await env.http.get("/.well-known/oauth-authorization-server")
        body = response.json()
        assert body["issuer"] == IN_PROCESS_URL  # no trailing slash added
        assert body["authorization_endpoint"] == f"{IN_PROCESS_URL}/authorize"
        assert body["token_endpoint"] == f"{IN_PROCESS_URL}/token"
        assert body["registration_endpoint"] == f"{IN_PROCESS_URL}/register"
        assert body["revocation_endpoint"] == f"{IN_PROCESS_URL}/revoke"
        assert body["code_challenge_methods_supported"] == ["S256"]
        assert body["authorization_response_iss_parameter_supported"] is True
        assert body["client_id_metadata_document_supported"] is True
        assert body["scopes_supported"] == ["read:user", "user:email", "read:org", "offline_access"]
        assert "none" in body["token_endpoint_auth_methods_supported"]
        assert set(body["grant_types_supported"]) == {"authorization_code", "refresh_token"}


async def test_protected_resource_metadata_describes_the_mcp_endpoint(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            body = (await env.http.get(path)).json()
            assert body["resource"] == f"{IN_PROCESS_URL}/mcp"
            assert body["authorization_servers"] == [IN_PROCESS_URL]
            assert body["scopes_supported"] == ["read:user"]
            assert body["bearer_methods_supported"] == ["header"]


async def test_the_sse_transport_publishes_its_own_resource(db_url: str) -> None:
    async with in_process(database_url=db_url, transport="sse") as env:
        body = (await env.http.get("/.well-known/oauth-protected-resource/sse")).json()
        assert body["resource"] == f"{IN_PROCESS_URL}/sse"
        challenge = (await env.http.get("/sse")).headers["www-authenticate"]
        assert 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/sse"' in challenge
        challenge = (await env.http.post("/messages/?session_id=x", json={})).headers["www-authenticate"]
        assert "oauth-protected-resource/sse" in challenge


# Registration ------------------------------------------------------------------------------------


async def test_a_public_client_registers_without_a_secret(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await register(env.http)
        assert response.status_code == 201
        body = response.json()
        assert body["token_endpoint_auth_method"] == "none"
        assert "client_secret" not in body


@pytest.mark.parametrize(
    "uri",
    ["javascript:alert(1)", "data:text/html,x", "http://evil.example/cb", "https://client.example/cb#frag", "file:///x"],
)
async def test_registration_refuses_dangerous_redirect_uris(db_url: str, uri: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await register(env.http, redirect_uris=[uri])
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_redirect_uri"


async def test_registration_is_bounded_in_size(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await register(env.http, name="x" * 20_000)
        assert response.status_code == 413
        response = await register(env.http, name="x" * 300)
        assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"
        response = await register(env.http, redirect_uris=[f"https://c.example/{i}" for i in range(11)])
        assert response.status_code == 400


async def test_registration_refuses_scopes_this_server_does_not_offer(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await register(env.http, scope="read:user repo")
        assert response.status_code == 400 and "repo" in response.json()["error_description"]
        assert (await register(env.http, scope="read:user offline_access")).status_code == 201


async def test_malformed_registrations_get_rfc_errors_not_500s(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        for body in (b"not json", b"[]", b'{"redirect_uris": "x"}', b"{}"):
            response = await env.http.post("/register", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, body
            assert response.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")


# /authorize ----------------------------------------------------------------------------------------


async def test_authorize_sends_the_person_to_our_consent_page_not_to_github(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, client, challenge))
        assert response.status_code == 302
        assert response.headers["location"].startswith(f"{IN_PROCESS_URL}/consent?request=")


async def test_an_unknown_client_gets_a_page_and_never_a_redirect(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        url = f"{IN_PROCESS_URL}/authorize?response_type=code&client_id=nobody&redirect_uri={REDIRECT_URI}&code_challenge=x&state=s"
        response = await env.http.get(url, headers={"accept": "text/html"})
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "text/html" in response.headers["content-type"]
        assert "nobody" in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://127.0.0.1:4567/callback/../evil",
        "http://127.0.0.1:4567/callbackx",
        "http://127.0.0.1.evil.example:4567/callback",
        "http://localhost:4567/callback",  # registered was 127.0.0.1: the host must match
    ],
)
async def test_an_unregistered_or_look_alike_redirect_uri_is_never_redirected_to(db_url: str, redirect_uri: str) -> None:
    async with in_process(database_url=db_url) as env:
        # Open redirect defence: OAuth 2.1 §4.1.2.1.
        client = await new_client(env)
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, client, challenge, redirect_uri=redirect_uri))
        assert response.status_code == 400
        assert "location" not in response.headers


async def test_a_loopback_redirect_may_use_another_port(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        moved = "http://127.0.0.1:59999/callback"
        client.redirect_uri = moved
        result, verifier = await authorize(env, client)
        assert "code" in result
        assert (await exchange(env, client, result["code"], verifier)).status_code == 200


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "repo"}, "invalid_scope"),
        ({"resource": "https://api.github.com"}, "invalid_target"),
        ({"code_challenge": "x" * 200}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
    ],
)
async def test_bad_requests_from_a_known_client_return_errors_with_state_and_iss(
    db_url: str, params: dict[str, str | None], error: str
) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, client, challenge, state="my-state", **params))  # type: ignore[arg-type]
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(client.redirect_uri)
        assert query(location) | {"error_description": ""} == {
            "error": error,
            "error_description": "",
            "state": "my-state",
            "iss": IN_PROCESS_URL,
        }


@pytest.mark.parametrize("params", [{"scope": "repo"}, {"response_type": "token"}, {"resource": "https://api.github.com"}])
async def test_an_error_for_a_website_redirect_is_a_page_the_person_confirms_not_a_redirect(
    db_url: str, params: dict[str, str]
) -> None:
    # RFC 9700 §4.11.2: a self-registered client must not turn this server into an open
    # redirector by sending people a deliberately broken request.
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, redirect_uris=["https://phish.example/cb"])
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, client, challenge, state="s-1", **params), headers={"accept": "text/html"})
        assert response.status_code == 400 and "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "phish.example" in response.text and "Continue to phish.example" in response.text
        (link,) = re.findall(r'<a href="([^"]+)">Continue to', response.text)
        target = html.unescape(link)
        assert target.startswith("https://phish.example/cb?")
        assert query(target)["state"] == "s-1" and query(target)["iss"] == IN_PROCESS_URL and "error" in query(target)
        # The same mistake from a loopback (native) client is redirected at once, as clients expect.
        native = await new_client(env)
        response = await env.http.get(authorize_url(env, native, challenge, **params))
        assert response.status_code == 302 and response.headers["location"].startswith(native.redirect_uri)


# /token --------------------------------------------------------------------------------------------


async def test_the_code_grant_issues_our_tokens_and_no_store(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, verifier = await authorize(env, client)
        assert result["iss"] == IN_PROCESS_URL and result["state"] == "client-state"
        response = await exchange(env, client, result["code"], verifier)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        assert body["scope"] == "read:user"
        assert body["access_token"].startswith("amcp_at_") and body["refresh_token"].startswith("amcp_rt_")


async def test_unknown_grant_types_are_unsupported(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        for grant_type in ("password", "client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"):
            response = await env.http.post("/token", data={"grant_type": grant_type, "client_id": client.client_id})
            assert response.status_code == 400
            assert response.json()["error"] == "unsupported_grant_type"


async def test_a_foreign_resource_at_the_token_endpoint_is_an_invalid_target(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, verifier = await authorize(env, client)
        response = await exchange(env, client, result["code"], verifier, resource="https://other.example/mcp")
        assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_a_wrong_code_verifier_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, _ = await authorize(env, client)
        response = await exchange(env, client, result["code"], "a" * 60)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_another_clients_code_cannot_be_redeemed(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        # Code injection: client B presents the code issued to client A.
        alice_client = await new_client(env)
        mallory_client = await new_client(env)
        result, verifier = await authorize(env, alice_client)
        mallory_client.redirect_uri = alice_client.redirect_uri
        response = await exchange(env, mallory_client, result["code"], verifier)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
        # ... and the rightful client still can.
        assert (await exchange(env, alice_client, result["code"], verifier)).status_code == 200


async def test_a_replayed_code_is_refused_and_revokes_its_tokens(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, verifier = await authorize(env, client)
        first = await exchange(env, client, result["code"], verifier)
        access = first.json()["access_token"]
        assert (await call_tool(env, access, "whoami")).status_code == 200
        replay = await exchange(env, client, result["code"], verifier)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert (await call_tool(env, access, "whoami")).status_code == 401
        assert (await refresh(env, client, first.json()["refresh_token"])).status_code == 400


async def test_two_concurrent_exchanges_of_one_code_exactly_one_wins(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, verifier = await authorize(env, client)
        responses = await asyncio.gather(*(exchange(env, client, result["code"], verifier) for _ in range(4)))
        assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]


async def test_an_expired_code_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        result, verifier = await authorize(env, client)
        env.clock.advance(301)
        response = await exchange(env, client, result["code"], verifier)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_refresh_rotates_both_tokens_and_the_used_refresh_token_stops_working(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env)
        response = await refresh(env, client, tokens.refresh_token)
        assert response.status_code == 200
        rotated = response.json()
        assert rotated["access_token"] != tokens.access_token and rotated["refresh_token"] != tokens.refresh_token
        assert (await call_tool(env, rotated["access_token"], "whoami")).status_code == 200
        assert (await call_tool(env, tokens.access_token, "whoami")).status_code == 401


async def test_a_replayed_refresh_token_revokes_the_whole_grant(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env)
        rotated = (await refresh(env, client, tokens.refresh_token)).json()
        replay = await refresh(env, client, tokens.refresh_token)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        # The thief (or the client) replayed: everything from this grant is dead, successor included.
        assert (await call_tool(env, rotated["access_token"], "whoami")).status_code == 401
        assert (await refresh(env, client, rotated["refresh_token"])).status_code == 400


async def test_refresh_may_narrow_but_not_widen_scopes(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env, scope="read:user user:email")
        assert tokens.scope == "read:user user:email"
        narrowed = await refresh(env, client, tokens.refresh_token, scope="read:user")
        assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read:user"
        widened = await refresh(env, client, narrowed.json()["refresh_token"], scope="read:user read:org")
        assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"


async def test_another_clients_refresh_token_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, tokens = await login(env)
        other = await new_client(env)
        response = await refresh(env, other, tokens.refresh_token)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_we_issue_a_refresh_token_even_when_github_gives_none(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        # The stand-in's default tokens are classic OAuth App tokens: no expiry, no GitHub refresh token.
        _, tokens = await login(env)
        assert tokens.refresh_token


async def test_confidential_clients_must_authenticate_at_the_token_endpoint(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, auth_method="client_secret_post")
        assert client.client_secret
        result, verifier = await authorize(env, client)
        secret, client.client_secret = client.client_secret, "wrong"
        assert (await exchange(env, client, result["code"], verifier)).status_code == 401
        client.client_secret = secret
        assert (await exchange(env, client, result["code"], verifier)).status_code == 200


async def test_malformed_token_requests_get_rfc_errors_not_500s(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        for body in (b"", b"%%%", b"grant_type=authorization_code", b"grant_type=refresh_token&client_id=x"):
            response = await env.http.post("/token", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
            assert 400 <= response.status_code < 500, body
            assert "error" in response.json()
        response = await env.http.post("/token", json={"grant_type": "authorization_code"})
        assert 400 <= response.status_code < 500


# /revoke ---------------------------------------------------------------------------------------------


async def test_a_public_client_revokes_without_a_client_secret(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env)
        response = await env.http.post("/revoke", data={"token": tokens.refresh_token, "client_id": client.client_id})
        assert response.status_code == 200
        assert (await call_tool(env, tokens.access_token, "whoami")).status_code == 401
        assert (await refresh(env, client, tokens.refresh_token)).status_code == 400


async def test_revoking_the_access_token_ends_the_refresh_token_too(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env)
        await env.http.post("/revoke", data={"token": tokens.access_token, "client_id": client.client_id})
        assert (await refresh(env, client, tokens.refresh_token)).status_code == 400


async def test_a_client_cannot_revoke_another_clients_token(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        _, tokens = await login(env)
        other = await new_client(env)
        response = await env.http.post("/revoke", data={"token": tokens.access_token, "client_id": other.client_id})
        assert response.status_code == 200  # RFC 7009 §2.2: no information leaks
        assert (await call_tool(env, tokens.access_token, "whoami")).status_code == 200


async def test_logging_out_revokes_the_persons_token_at_github(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client, tokens = await login(env)
        github = env.services.dev_github
        assert github is not None
        await env.http.post("/revoke", data={"token": tokens.refresh_token, "client_id": client.client_id})
        assert any(method == "DELETE" and path.endswith("/token") for method, path in github.calls)


async def test_revoking_at_github_can_be_turned_off(db_url: str) -> None:
    async with in_process(database_url=db_url, revoke_github_tokens=False) as env:
        client, tokens = await login(env)
        response = await env.http.post("/revoke", data={"token": tokens.refresh_token, "client_id": client.client_id})
        assert response.status_code == 200
        assert await env.services.store.list_grants() == []  # revoked here...
        assert env.services.dev_github is not None
        assert not any(method == "DELETE" for method, _ in env.services.dev_github.calls)  # ...not at GitHub


async def test_revoke_without_a_token_is_a_bad_request(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        response = await env.http.post("/revoke", data={"client_id": client.client_id})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        response = await env.http.post("/revoke", data={"token": "x"})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("auth_method", ["none", "client_secret_post"])
async def test_an_identity_assertion_grant_is_refused_as_unsupported(db_url: str, auth_method: str) -> None:
    # RFC 7523 jwt-bearer grants (SEP-990): registration never grants them to a client, and the
    # provider refuses them too; people sign in through GitHub here.
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, token_endpoint_auth_method=auth_method)
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": "eyJhbGciOiJub25lIn0.e30.",
            "client_id": client.client_id,
            **({"client_secret": client.client_secret} if client.client_secret else {}),
        }
        response = await env.http.post("/token", data=form)
        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"
