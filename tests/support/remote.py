"""A deployment reached over real HTTP, with the face tests/support/oauth.py expects of an
in-process app (`issuer`, `mcp_url`, `http`, `browser()`), so the same OAuth steps drive it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.browser import Browser


@dataclass
class Remote:
    issuer: str
    http: httpx.AsyncClient = field(init=False)
    browsers: list[Browser] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.issuer, timeout=30, follow_redirects=False)

    @property
    def mcp_url(self) -> str:
        return self.issuer + "/mcp"

    def browser(self, **kwargs: Any) -> Browser:
        browser = Browser(**kwargs)
        self.browsers.append(browser)
        return browser

    async def aclose(self) -> None:
        await self.http.aclose()
        for browser in self.browsers:
            await browser.aclose()
