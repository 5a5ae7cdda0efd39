"""`create_app(settings)`: the one place where the parts are built and wired together.

Where things go (the README's development section says the same):
- a tool: a module with a `@scoped_tool` function, passed in `create_app(settings, tools=[...])`
  (or named by AUTH_MCP_TOOLS); the built-in ones are `auth_mcp.tools.BUILTIN_TOOLS`;
- a scope: `auth_mcp/scopes.py` (or `create_app(..., scopes=...)`);
- a middleware: `SERVER_LAYERS` below (steps of http/every_request.py after the proxy headers),
  or `MCP_ENDPOINT_LAYERS` in `app/resource.py` for the MCP endpoint alone, in the order its
  comment justifies;
- a route of the authorization server: `app/authorization.py`; a migration: `auth_mcp/migrations/versions/`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import httpx
from mcp.server.auth.routes import build_resource_metadata_url
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from auth_mcp.app.audit import build_audit
from auth_mcp.app.authorization import (
    AuthorizationServer,
    browser_routes,
    build_authorization_server,
    oauth_routes,
    protected_resource_routes,
)
from auth_mcp.app.core import SERVER_NAME, Core, build_core
from auth_mcp.app.gateway import build_gateway_side, gateway_routes, upstream_readiness
from auth_mcp.app.github import dev_github_mount
from auth_mcp.app.lifespan import Closer, database_readiness, lifespan
from auth_mcp.app.policy import build_policy
from auth_mcp.app.resource import ResourceServer, build_resource_server, check_tool_scopes
from auth_mcp.app.services import Services
from auth_mcp.authorization.account import ACCOUNT_PATH
from auth_mcp.authorization.cimd import MetadataDocumentClients
from auth_mcp.authorization.expiry import Purger
from auth_mcp.clock import Clock, SystemClock
from auth_mcp.gateway.builder import Gateway
from auth_mcp.github.devserver import DevGitHubOptions
from auth_mcp.github.models import GitHubRateLimited, GitHubUnavailable
from auth_mcp.http.access_log import AccessLog
from auth_mcp.http.every_request import EveryRequest
from auth_mcp.http.front_page import FrontPage
from auth_mcp.http.health import healthz, readyz
from auth_mcp.http.loopback_alias import LoopbackAlias
from auth_mcp.http.outage import Outage, OutageResponses, Unavailable
from auth_mcp.http.rate_limit import RateLimit, TokenBuckets, default_limits
from auth_mcp.scopes import DEFAULT_SCOPE, SUPPORTED_SCOPES
from auth_mcp.settings import Settings
from auth_mcp.storage.availability import StorageUnavailable, describe, is_outage
from auth_mcp.storage.records import PurgeCounts
from auth_mcp.tools import BUILTIN_TOOLS, ToolSpec
from auth_mcp.tools.loading import load_tools

__all__ = ["SERVER_LAYERS", "Services", "create_app"]

# What every request goes through, outermost first: the proxy headers as a middleware, then the
# other four as steps of one layer (http/every_request.py: one ASGI call for what every tool call
# needs). Each one's place has a reason, which tests/app/test_layers.py checks:
# - proxy_headers: the client's address and scheme are settled (from trusted proxies only)
#   before anything logs or rate-limits by them;
# - access_log: every request, tool calls included, gets its request id and one log line;
# - loopback_alias: on a loopback issuer, a request by the other loopback name is told the URL to
#   use before any route answers it with URLs that name the issuer (logged: inside access_log);
# - outage: a storage outage anywhere below, tool calls included, is answered 503 with
#   Retry-After (inside access_log, so the 503 is logged and counted like any answer);
# - mcp_shortcut: tool calls (at /mcp and each gateway upstream's /mcp/NAME) skip the router
#   (they are still logged, being inside access_log).
SERVER_LAYERS: tuple[str, ...] = ("proxy_headers", *EveryRequest.STEPS)
GITHUB_RETRY_AFTER = 30  # seconds: GitHub's incidents are rarely shorter


def create_app(
    settings: Settings,
    *,
    tools: Sequence[ToolSpec] | None = None,
    scopes: Sequence[str] = SUPPORTED_SCOPES,
    clock: Clock | None = None,
    github_http: httpx.AsyncClient | None = None,
    dev_github_options: DevGitHubOptions | None = None,
    metadata_documents: MetadataDocumentClients | None = None,
) -> Starlette:
    """Build the whole server. Fails fast (ValueError, with a sentence) on what it cannot serve.

    `tools` are the MCP tools to serve (those named by AUTH_MCP_TOOLS, else
    `auth_mcp.tools.BUILTIN_TOOLS`) and `scopes`
    the MCP scopes the server offers; every tool's scopes must be among them. Tests replace the
    HTTP client used to reach GitHub (`github_http`), tune the built-in GitHub stand-in
    (`dev_github_options`), or give the metadata-document fetcher a fake network (`metadata_documents`).
    """
    if tools is None:
        tools = load_tools(settings.tools) if settings.tools else BUILTIN_TOOLS
    check_tool_scopes(tools, scopes)
    core = build_core(settings, clock=clock or SystemClock(), github_http=github_http, dev_github_options=dev_github_options)
    policy = build_policy(core, offered_scopes=scopes)
    audit = build_audit(core, upstreams=core.gateway_config.upstreams if core.gateway_config else ())
    documents = metadata_documents or MetadataDocumentClients(clock=core.clock, offered_scopes=scopes)
    authorization = build_authorization_server(
        core, documents=documents, offered_scopes=scopes, policy_github_scopes=policy.policies.github_scopes
    )
    resource = build_resource_server(core, tools=tools, policy=policy.builtin, audit=audit)
    purger = Purger(store=core.store, revoker=core.revoker, clock=core.clock)

    async def purge() -> PurgeCounts:
        await authorization.ledger.purge_expired()  # client assertions' ids, once they expired
        return await purger.run_once()

    gateway = build_gateway_side(core, policy=policy, audit=audit)
    closers: list[Closer] = [core.github.http.aclose] if core.github.owns_http else []
    if metadata_documents is None:
        closers.append(documents.aclose)
    if gateway is not None:
        closers.append(gateway.aclose)
    app = Starlette(
        routes=_routes(core, authorization, resource, gateway, offered_scopes=scopes),
        middleware=_server_middleware(
            core, shortcuts=([resource.shortcut] if resource.shortcut else []) + (gateway.endpoints if gateway else [])
        ),
        lifespan=lifespan(
            engine=core.engine,
            purge=purge,
            announcer=core.announcer,
            mcp=resource.mcp,
            streamable=settings.transport == "streamable-http",
            upgrade_outdated=settings.is_sqlite,
            closers=closers,
            audit=audit,
            log_writer=core.log_writer,
        ),
    )
    app.state.services = Services(
        settings=settings,
        store=core.store,
        keyring=core.keyring,
        github=core.github.client,
        verifier=core.verifier,
        revoker=core.revoker,
        provider=authorization.provider,
        audience=core.audience,
        mcp=resource.mcp,
        dev_github=core.github.dev,
        http=core.github.http,
        metrics=core.metrics,
        purger=purger,
        gateway=gateway,
        policy=policy,
        audit=audit,
        log_writer=core.log_writer,
    )
    return app


def _routes(
    core: Core,
    authorization: AuthorizationServer,
    resource: ResourceServer,
    gateway: Gateway | None,
    *,
    offered_scopes: Sequence[str],
) -> list[BaseRoute]:
    """Every route; the MCP endpoint first, as it is matched on every tool call."""
    settings, issuer = core.settings, core.settings.issuer
    limits = default_limits(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else {}
    buckets = TokenBuckets(clock=core.clock)

    def rate_limited(path: str, app: ASGIApp) -> ASGIApp:
        limit = limits.get(path)
        return app if limit is None else RateLimit(app, name=path, limit=limit, buckets=buckets, pages=core.pages)

    async def readiness() -> tuple[bool, dict[str, Any]]:
        ready, details = await database_readiness(core.store)
        if gateway is not None:
            # Reported, but not a reason to leave the load balancer (app/gateway.py, README).
            details["upstreams"] = await upstream_readiness(gateway)
        return ready, details

    return [
        *resource.routes,
        *(gateway_routes(core, gateway) if gateway is not None else []),
        *oauth_routes(
            authorization,
            issuer=issuer,
            resources=core.resources,
            pages=core.pages,
            offered_scopes=offered_scopes,
            rate_limited=rate_limited,
            dynamic_registration=settings.dynamic_registration,
            metadata_documents=settings.client_metadata_documents,
            jwks_uri=gateway.jwks_uri if gateway is not None else None,
        ),
        *protected_resource_routes(core.audience, issuer=issuer, scopes=[DEFAULT_SCOPE], name=SERVER_NAME),
        *browser_routes(authorization, rate_limited=rate_limited),
        Route("/", _front_page(core).show, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz(readiness), methods=["GET"]),
        *(
            [Route("/metrics", core.metrics.guarded_endpoint(settings.metrics_token.get_secret_value()), methods=["GET"])]
            if settings.metrics and settings.metrics_token is not None
            else []
        ),
        *([dev_github_mount(core.github.dev)] if core.github.dev is not None else []),
        *resource.fallback_routes,
    ]


def _front_page(core: Core) -> FrontPage:
    return FrontPage(
        pages=core.pages,
        server_name=SERVER_NAME,
        mcp_url=core.audience.canonical,
        transport=core.settings.transport,
        account_url=core.settings.issuer + ACCOUNT_PATH,
        metadata_url=core.settings.issuer + "/.well-known/oauth-authorization-server",
        resource_metadata_url=str(build_resource_metadata_url(core.audience.canonical)),  # type: ignore[arg-type]
        dev_mode=core.settings.dev_mode,
    )


def _server_middleware(core: Core, *, shortcuts: list[Route]) -> list[Middleware]:
    """SERVER_LAYERS as Starlette middleware, outermost first: uvicorn's proxy headers (when
    proxies are configured), then EveryRequest, which takes the other steps in its own order."""
    proxies = list(core.settings.trusted_proxies)
    issuer = core.settings.issuer
    every_request = Middleware(
        EveryRequest,
        access_log=AccessLog(metrics=core.metrics, lines=core.log_writer),
        loopback_alias=LoopbackAlias(issuer=issuer, mcp_url=core.audience.canonical) if LoopbackAlias.applies(issuer) else None,
        outages=OutageResponses(classify=functools.partial(outage_of, clock=core.clock), pages=core.pages),
        endpoints=shortcuts,
    )
    # X-Forwarded-For / -Proto only from the configured proxies (uvicorn's implementation).
    proxy_headers = [Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)] if proxies else []
    return [*proxy_headers, every_request]


def outage_of(error: BaseException, *, clock: Clock) -> Outage | None:
    """Which failures are outages (503 with Retry-After): the database's, whether the store
    already said so or a driver error escaped from elsewhere; and GitHub's, where a request
    cannot be answered without it (the membership check of a refresh)."""
    if isinstance(error, StorageUnavailable):
        return error
    if isinstance(error, GitHubRateLimited):
        wait = max(1, error.retry_at - int(clock.now()))
        return Unavailable(retry_after=wait, message="GitHub's rate limit for this person is exhausted.", reason=str(error))
    if isinstance(error, GitHubUnavailable):
        return Unavailable(retry_after=GITHUB_RETRY_AFTER, message="GitHub is not answering right now.", reason=str(error))
    if is_outage(error):
        return StorageUnavailable(describe(error))
    return None
