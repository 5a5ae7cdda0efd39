"""A scripted browser: follows redirects by hand with its own cookie jar, answers our consent page
and the GitHub stand-in's login page, and stops at the MCP client's redirect URI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from tests.support.forms import Form, parse_forms

MAX_HOPS = 20


class BrowserStuck(AssertionError):
    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        self.response = response
        super().__init__(message + (f" (HTTP {response.status_code}: {response.text[:500]})" if response is not None else ""))


@dataclass
class Browser:
    """`consent` is "approve" or "deny"; `github` is "authorize" or "cancel"."""

    login: str = "octocat"
    consent: str = "approve"
    github: str = "authorize"
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(follow_redirects=False, timeout=30))
    visited: list[str] = field(default_factory=list)
    # Called with each consent page response before it is answered (tests inspect it).
    on_consent: Callable[[httpx.Response], None] | None = None
    # Stop before requesting a URL starting with this (e.g. to hand the GitHub link to someone else).
    stop_before: str | None = None

    async def go(self, url: str, *, until: str) -> str:
        """Navigate from `url` until a redirect to a URL starting with `until`; return that URL."""
        method, data = "GET", None
        for _ in range(MAX_HOPS):
            if url.startswith(until):
                return url
            if self.stop_before and url.startswith(self.stop_before):
                return url
            self.visited.append(url)
            response = await self.http.request(method, url, data=data)
            method, data = "GET", None
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code != 200:
                raise BrowserStuck(f"unexpected answer at {url}", response)
            forms = parse_forms(response.text)
            if not forms:
                raise BrowserStuck(f"no form at {url}", response)
            form = forms[0]
            if "csrf" in form.fields:
                if self.on_consent:
                    self.on_consent(response)
                data = self._submit(form, "decision", self.consent)
            elif "login" in form.fields:
                form.fields["login"] = self.login
                data = self._submit(form, "decision", self.github)
            else:
                raise BrowserStuck(f"unknown form at {url}", response)
            url, method = urljoin(url, form.action), form.method.upper()
        raise BrowserStuck(f"more than {MAX_HOPS} hops")

    @staticmethod
    def _submit(form: Form, button: str, value: str) -> dict[str, str]:
        assert (button, value) in form.buttons, f"no {button}={value} button in {form.buttons}"
        return {**form.fields, button: value}

    async def aclose(self) -> None:
        await self.http.aclose()
