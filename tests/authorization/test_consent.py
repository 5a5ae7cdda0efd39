"""The consent page: the person approves each client before GitHub is ever contacted."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from starlette.responses import Response

from auth_mcp.authorization.browser import BrowserBinding
from auth_mcp.crypto import Keyring
from auth_mcp.tokens import token_hash
from tests.support.forms import parse_forms
from tests.support.oauth import Client, authorize_url, new_client, pkce, query
from tests.support.server import IN_PROCESS_URL, InProcess, in_process


async def consent_url(env: InProcess, client: Client, **params: str) -> str:
    _, challenge = pkce()
    response = await env.http.get(authorize_url(env, client, challenge, **params))
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def open_consent(env: InProcess, http: httpx.AsyncClient, client: Client, **params: str) -> tuple[httpx.Response, dict[str, str]]:
    page = await http.get(await consent_url(env, client, **params))
    assert page.status_code == 200, page.text
    return page, parse_forms(page.text)[0].fields


def github_calls(env: InProcess) -> int:
    assert env.services.dev_github is not None
    return len(env.services.dev_github.calls)


async def test_the_page_names_the_client_the_redirect_host_and_the_access(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env, name="Acme Assistant", redirect_uris=["https://assistant.acme.example/oauth/cb"])
        page, _ = await open_consent(env, env.client(), client, scope="read:user user:email")
        assert "Acme Assistant" in page.text
        assert "assistant.acme.example" in page.text
        assert "read:user" in page.text and "user:email" in page.text
        assert "not verified" in page.text  # a self-registered name is not vouched for


async def test_the_page_cannot_be_framed_loads_nothing_external_and_is_not_cached(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        page, _ = await open_consent(env, env.client(), await new_client(env))
        assert page.headers["x-frame-options"] == "DENY"
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text and "http://" not in page.text.split("<code>")[0].split("</style>")[-1]


async def test_a_client_name_cannot_inject_markup(db_url: str) -> None:
    # XSS through client_name.
    async with in_process(database_url=db_url) as env:
        evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
        page, _ = await open_consent(env, env.client(), await new_client(env, name=evil))
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;" in page.text


async def test_the_page_stays_submittable_however_often_it_is_loaded(db_url: str) -> None:
    # Browsers prefetch: a CSRF token that rotated per render would break the first page's form.
    async with in_process(database_url=db_url) as env:
        browser = env.client()
        client = await new_client(env)
        url = await consent_url(env, client)
        first = parse_forms((await browser.get(url)).text)[0].fields
        for _ in range(3):
            assert (await browser.get(url)).status_code == 200
        response = await browser.post("/consent", data={**first, "decision": "approve"})
        assert response.status_code == 303
        assert "/_dev/github/login/oauth/authorize" in response.headers["location"]


async def test_approval_needs_the_browsers_csrf_cookie_and_token(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        _, form = await open_consent(env, env.client(), client)
        # The attacker knows the fields (it can load the page itself) but not the victim's cookie.
        attacker = env.client()
        assert (await attacker.post("/consent", data={**form, "decision": "approve"})).status_code == 403
        victim = env.client()
        _, own_form = await open_consent(env, victim, client)
        forged = {**own_form, "csrf": "forged", "decision": "approve"}
        assert (await victim.post("/consent", data=forged)).status_code == 403
        assert github_calls(env) == 0


async def test_a_cross_site_form_post_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        browser = env.client()
        _, form = await open_consent(env, browser, await new_client(env))
        response = await browser.post("/consent", data={**form, "decision": "approve"}, headers={"origin": "https://evil.example"})
        assert response.status_code == 403


async def test_deny_returns_access_denied_with_state_and_iss_and_never_contacts_github(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        browser = env.client()
        _, form = await open_consent(env, browser, client, state="xyz")
        response = await browser.post("/consent", data={**form, "decision": "deny"})
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith(client.redirect_uri)
        params = query(location)
        assert params["error"] == "access_denied" and params["state"] == "xyz" and params["iss"] == IN_PROCESS_URL
        assert github_calls(env) == 0
        # The request is finished: it cannot be approved afterwards.
        assert (await browser.post("/consent", data={**form, "decision": "approve"})).status_code == 400


async def test_the_upstream_state_exists_only_after_approval_and_is_ours(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        browser = env.client()
        page_url = await consent_url(env, client, state="the-clients-state")
        form = parse_forms((await browser.get(page_url)).text)[0].fields
        pending = await env.services.store.get_pending(token_hash(form["request"]))
        assert pending is not None and pending.upstream_state_hash is None
        assert not any("states" in name for name in browser.cookies)
        response = await browser.post("/consent", data={**form, "decision": "approve"})
        github_url = response.headers["location"]
        github_params = query(github_url)
        assert github_params["state"] != "the-clients-state"
        assert len(github_params["state"]) >= 43
        assert github_params["code_challenge_method"] == "S256"
        assert urlsplit(github_url).path == "/_dev/github/login/oauth/authorize"
        assert any("states" in name for name in browser.cookies)
        # A second approval of the same request is refused.
        assert (await browser.post("/consent", data={**form, "decision": "approve"})).status_code == 400


async def test_cookies_are_httponly_and_samesite_lax_and_host_prefixed_on_https(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        browser = env.client()
        page, _ = await open_consent(env, browser, await new_client(env))
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    secure = BrowserBinding(keyring=Keyring(secrets_newest_first=["k" * 40]), secure=True)
    assert secure.nonce_cookie.startswith("__Host-") and secure.states_cookie.startswith("__Host-")
    response = Response()
    secure.set_nonce(response, "n")
    header = response.headers["set-cookie"].lower()
    assert header.startswith("__host-") and "secure" in header and "httponly" in header


async def test_unknown_or_expired_requests_get_a_page_that_says_so(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await env.http.get("/consent?request=made-up")
        assert response.status_code == 400 and "does not exist" in response.text
        url = await consent_url(env, await new_client(env))
        env.clock.advance(601)
        response = await env.http.get(url)
        assert response.status_code == 400 and "expired" in response.text.lower()


async def test_an_incomplete_form_is_a_bad_request(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        assert (await env.http.post("/consent", data={"decision": "approve"})).status_code == 400


async def test_browsers_send_the_consent_forms_own_origin_so_it_is_accepted(db_url: str) -> None:
    # Under `Referrer-Policy: no-referrer` browsers would send `Origin: null` with the form's own
    # POST, indistinguishable from a sandboxed cross-site post; same-origin keeps the real origin.
    async with in_process(database_url=db_url) as env:
        browser = env.client()
        page, form = await open_consent(env, browser, await new_client(env))
        assert page.headers["referrer-policy"] == "same-origin"
        response = await browser.post("/consent", data={**form, "decision": "approve"}, headers={"origin": env.issuer})
        assert response.status_code == 303


async def test_the_consent_page_after_the_sign_in_finished_says_so_instead_of_pointing_to_github(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        browser = env.browser()
        page_url = await consent_url(env, client)
        await browser.go(page_url, until=client.redirect_uri)
        again = await browser.http.get(page_url)  # the back button, or the tab left open
        assert again.status_code == 400
        assert "Sign-in finished" in again.text and "already complete" in again.text
        assert "finish it on GitHub" not in again.text
