"""`GET /`: what this server is and how to connect a client to it.

A person who opens the server's URL in a browser learns the one MCP URL to give their client,
how the common clients take it, and where to see and revoke what they authorized. Programs get
the same facts as JSON (RFC 9728's resource metadata remains the machine-readable source).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_mcp.http.negotiation import prefers_html
from auth_mcp.http.pages import Pages


class FrontPage:
    def __init__(
        self,
        *,
        pages: Pages,
        server_name: str,
        mcp_url: str,
        transport: str,
        account_url: str,
        metadata_url: str,
        resource_metadata_url: str,
        dev_mode: bool,
    ) -> None:
        self._pages = pages
        self._context: dict[str, Any] = {
            "server_name": server_name,
            "mcp_url": mcp_url,
            "transport": transport,
            "account_url": account_url,
            "metadata_url": metadata_url,
            "resource_metadata_url": resource_metadata_url,
            "dev_mode": dev_mode,
        }

    async def show(self, request: Request) -> Response:
        if not prefers_html(request.headers.get("accept", "")):
            return JSONResponse(self._context, headers={"Cache-Control": "no-store"})
        context = {k: v for k, v in self._context.items() if k != "server_name"}
        return self._pages.render("index.html", **context)
