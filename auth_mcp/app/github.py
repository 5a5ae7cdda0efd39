"""GitHub as the server reaches it: the real one, or the stand-in served by this same process."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from mcp.server.transport_security import RequestBodyLimitMiddleware
from pydantic import SecretStr
from starlette.routing import Mount, Router

from auth_mcp.clock import Clock
from auth_mcp.crypto import Keyring
from auth_mcp.github.client import DEFAULT_TIMEOUT, GitHubClient
from auth_mcp.github.devserver import DevGitHub, DevGitHubOptions
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.pages import Pages
from auth_mcp.settings import Settings

DEV_GITHUB_PATH = "/_dev/github"


@dataclass
class GitHubSide:
    client: GitHubClient
    http: httpx.AsyncClient
    owns_http: bool  # created here, so closed at shutdown
    dev: DevGitHub | None


def build_github(
    settings: Settings,
    *,
    keyring: Keyring,
    pages: Pages,
    metrics: Metrics,
    clock: Clock,
    callback_url: str,
    http: httpx.AsyncClient | None,
    dev_options: DevGitHubOptions | None,
) -> GitHubSide:
    issuer = settings.issuer
    dev: DevGitHub | None = None
    if settings.dev_mode:
        options = dev_options or DevGitHubOptions(
            client_id="auth-mcp-dev", client_secret=keyring.mac("dev-github-client-secret"), callback_url=callback_url
        )
        dev = DevGitHub(options=options, signing_key=keyring.mac("dev-github-signing"), pages=pages, clock=clock)
        web, api = issuer + DEV_GITHUB_PATH, issuer + DEV_GITHUB_PATH + "/api/v3"
        client_id, client_secret = options.client_id, SecretStr(options.client_secret)
        # The server reaches its own stand-in in-process; browsers reach it over HTTP.
        stand_in = Router(routes=[Mount(DEV_GITHUB_PATH, app=dev.app)])
        client_http = http or httpx.AsyncClient(transport=httpx.ASGITransport(app=stand_in), timeout=DEFAULT_TIMEOUT)
    else:
        if settings.github_client_id is None or settings.github_client_secret is None:
            raise ValueError("Set both AUTH_MCP_GITHUB_CLIENT_ID and AUTH_MCP_GITHUB_CLIENT_SECRET, or neither (dev mode).")
        web, api = settings.github_url, settings.github_api_url
        client_id, client_secret = settings.github_client_id, settings.github_client_secret
        client_http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=httpx.Limits(max_connections=100))
    client = GitHubClient(
        http=client_http,
        web_url=web,
        api_url=api,
        client_id=client_id,
        client_secret=client_secret,
        clock=clock,
        observer=metrics.github_call,
    )
    return GitHubSide(client=client, http=client_http, owns_http=http is None, dev=dev)


DEV_GITHUB_BODY_LIMIT = 4 * 1024  # its login form and API calls are a few fields


def dev_github_mount(dev: DevGitHub) -> Mount:
    return Mount(DEV_GITHUB_PATH, app=RequestBodyLimitMiddleware(dev.app, DEV_GITHUB_BODY_LIMIT))
