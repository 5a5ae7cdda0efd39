"""HTML pages (consent, errors, the GitHub stand-in's login): one autoescaping template
environment and one place that sets the headers every page needs."""

from __future__ import annotations

import secrets
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse


class Pages:
    def __init__(self, *, server_name: str) -> None:
        self._env = Environment(
            loader=PackageLoader("auth_mcp", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._server_name = server_name

    def render(self, template: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        body = self._env.get_template(template).render(server_name=self._server_name, csp_nonce=nonce, **context)
        return HTMLResponse(body, status_code=status_code, headers={**page_headers(nonce), **(headers or {})})

    def error(
        self,
        *,
        status_code: int,
        title: str,
        message: str,
        hint: str | None = None,
        error: str | None = None,
        continue_url: str | None = None,
        continue_host: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        return self.render(
            "error.html",
            status_code=status_code,
            headers=headers,
            title=title,
            message=message,
            hint=hint,
            error=error,
            continue_url=continue_url,
            continue_host=continue_host,
        )


def page_headers(nonce: str) -> dict[str, str]:
    """Nothing external loads, no script runs, and no other site may frame the page (clickjacking)."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with the
        # consent form's own POST (Fetch: "append a request Origin header"), which the consent
        # page must be able to tell from a cross-site post. Other sites still get no Referer.
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
