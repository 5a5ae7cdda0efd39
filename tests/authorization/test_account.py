"""The account page: sign in with GitHub, see your own grants, revoke any of them."""

from __future__ import annotations

from urllib.parse import urljoin

import httpx

from tests.support.forms import Form, parse_forms
from tests.support.oauth import call_tool, login, new_client
from tests.support.server import InProcess, in_process


async def sign_in(env: InProcess, who: str) -> httpx.AsyncClient:
    """A browser of its own that signs in to /account as `who` through the GitHub stand-in."""
    browser = env.client()
    url = f"{env.issuer}/account/sign-in"
    for _ in range(10):
        response = await browser.get(url)
        if response.is_redirect:
            url = urljoin(url, response.headers["location"])
            if url == f"{env.issuer}/account":
                return browser
            continue
        forms = parse_forms(response.text)
        assert response.status_code == 200 and forms and "login" in forms[0].fields, response.text[:300]
        form = forms[0]
        response = await browser.post(urljoin(url, form.action), data={**form.fields, "login": who, "decision": "authorize"})
        assert response.is_redirect, response.text[:300]
        url = urljoin(url, response.headers["location"])
    raise AssertionError("the sign-in did not come back to /account")


async def revoke_forms(browser: httpx.AsyncClient) -> list[Form]:
    page = await browser.get("/account")
    assert page.status_code == 200
    return [form for form in parse_forms(page.text) if "grant" in form.fields]


async def test_a_person_sees_their_own_grants_with_client_names_and_no_one_elses() -> None:
    async with in_process() as env:
        editor = await new_client(env, name="Editor One")
        _, _ = await login(env, editor, login="alice")
        _, _ = await login(env, await new_client(env, name="Notebook"), login="alice", scope="read:user user:email")
        _, _ = await login(env, await new_client(env, name="Bobs Secret Tool"), login="bob")
        alice = await sign_in(env, "alice")
        page = (await alice.get("/account")).text
        assert "Signed in as alice" in page
        assert "Editor One" in page and "Notebook" in page and "user:email" in page
        assert "Bobs Secret Tool" not in page
        assert len(await revoke_forms(alice)) == 2
        await alice.aclose()


async def test_revoking_on_the_page_ends_that_grant_at_once_and_leaves_the_others() -> None:
    async with in_process() as env:
        _, tokens_a = await login(env, await new_client(env, name="Client A"), login="alice")
        _, tokens_b = await login(env, await new_client(env, name="Client B"), login="alice")
        alice = await sign_in(env, "alice")
        first_grant = (await env.services.store.list_grants())[0].grant_id
        form = next(f for f in await revoke_forms(alice) if f.fields["grant"] == first_grant)
        revoked_grant = await env.services.store.get_grant(form.fields["grant"])
        assert revoked_grant is not None
        response = await alice.post("/account/revoke", data=form.fields)
        assert response.status_code == 303 and response.headers["location"] == "/account?revoked=1"
        assert "Access revoked" in (await alice.get("/account?revoked=1")).text
        gone, kept = (tokens_a, tokens_b) if revoked_grant.client_name == "Client A" else (tokens_b, tokens_a)
        assert (await call_tool(env, gone.access_token, "whoami")).status_code == 401
        assert (await call_tool(env, kept.access_token, "whoami")).status_code == 200
        assert len(await revoke_forms(alice)) == 1
        await alice.aclose()


async def test_a_person_cannot_revoke_someone_elses_grant_even_knowing_its_id() -> None:
    async with in_process() as env:
        _, bobs = await login(env, await new_client(env, name="Bob's"), login="bob")
        await login(env, await new_client(env, name="Alice's"), login="alice")
        bob_grant = next(g for g in await env.services.store.list_grants() if g.github_login == "bob")
        alice = await sign_in(env, "alice")
        form = (await revoke_forms(alice))[0]
        response = await alice.post("/account/revoke", data={**form.fields, "grant": bob_grant.grant_id})
        assert response.status_code == 404 and "No such authorization" in response.text
        assert (await call_tool(env, bobs.access_token, "whoami")).status_code == 200
        await alice.aclose()


async def test_the_revoke_form_needs_this_browsers_csrf_token_and_this_servers_origin() -> None:
    async with in_process() as env:
        _, tokens = await login(env, await new_client(env, name="Kept"), login="alice")
        alice = await sign_in(env, "alice")
        other_browser = await sign_in(env, "alice")  # the same person, another browser
        form = (await revoke_forms(alice))[0]
        other_form = (await revoke_forms(other_browser))[0]
        attempts = [
            ({"grant": form.fields["grant"]}, {}, 400),  # no token at all
            ({**form.fields, "csrf": "forged"}, {}, 403),
            ({**form.fields, "csrf": other_form.fields["csrf"]}, {}, 403),  # another browser's token
            (form.fields, {"Origin": "https://evil.example"}, 403),  # a cross-site post
        ]
        for data, headers, status in attempts:
            response = await alice.post("/account/revoke", data=data, headers=headers)
            assert response.status_code == status, (data, headers, response.text[:200])
        signed_out = env.client()
        response = await signed_out.post("/account/revoke", data=form.fields)
        assert response.status_code == 401 and "Not signed in" in response.text
        assert (await call_tool(env, tokens.access_token, "whoami")).status_code == 200
        for browser in (alice, other_browser, signed_out):
            await browser.aclose()


async def test_a_sign_in_this_browser_did_not_start_cannot_be_finished_here() -> None:
    async with in_process() as env:
        mallory = env.client()
        response = await mallory.get("/account/sign-in")
        github_url = response.headers["location"]
        page = await mallory.get(github_url)
        form = parse_forms(page.text)[0]
        response = await mallory.post(urljoin(github_url, form.action), data={**form.fields, "login": "mallory", "decision": "authorize"})
        callback = response.headers["location"]
        assert callback.startswith(f"{env.issuer}/github/callback/account?")
        victim = env.client()
        refused = await victim.get(callback)
        assert refused.status_code == 403 and "not started in this browser" in refused.text
        assert "Signed in as" not in (await victim.get("/account")).text
        for browser in (mallory, victim):
            await browser.aclose()


async def test_signing_in_asks_github_for_no_scope_and_gives_its_token_back_at_once() -> None:
    async with in_process() as env:
        anonymous = env.client()
        page = await anonymous.get("/account")
        assert page.status_code == 200 and "Sign in with GitHub" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        start = await anonymous.get("/account/sign-in")
        assert "scope=&" in start.headers["location"]
        github = env.services.dev_github
        assert github is not None
        before = github.calls.count(("DELETE", "/applications/auth-mcp-dev/token"))
        alice = await sign_in(env, "alice")
        assert github.calls.count(("DELETE", "/applications/auth-mcp-dev/token")) == before + 1
        assert "No application holds access" in (await alice.get("/account")).text
        sign_out = next(f for f in parse_forms((await alice.get("/account")).text) if "grant" not in f.fields)
        assert (await alice.post("/account/sign-out", data=sign_out.fields)).status_code == 303
        assert "Sign in with GitHub" in (await alice.get("/account")).text
        for browser in (anonymous, alice):
            await browser.aclose()
