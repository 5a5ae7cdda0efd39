"""`create_app(settings)`: the only place where the parts are built and wired together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.routes import build_metadata, build_resource_metadata_url
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router, request_response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from auth_mcp.http.access_log import AccessLog
from auth_mcp.authorization.access_policy import AccessPolicy, MembershipRecheck
from auth_mcp.resource.audience import Audience
from auth_mcp.resource.bearer import BearerGuard
from auth_mcp.authorization.browser import BrowserBinding
from auth_mcp.authorization.callback import GitHubCallback
from auth_mcp.authorization.cimd import MetadataDocumentClients
from auth_mcp.clock import Clock, SystemClock
from auth_mcp.authorization.consent import Consent
from auth_mcp.crypto import Keyring, load_or_create_key_file
from auth_mcp.http.dns_rebinding import DnsRebindingGuard
from auth_mcp.github.client import DEFAULT_TIMEOUT, GitHubClient
from auth_mcp.github.devserver import DevGitHub, DevGitHubOptions
from auth_mcp.github.person import PersonGitHub
from auth_mcp.http.metrics import Metrics
from auth_mcp.authorization.endpoints import AuthorizeEndpoint, RevokeEndpoint, TokenEndpoint
from auth_mcp.http.pages import Pages
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.provider import AuthServerProvider
from auth_mcp.http.rate_limit import RateLimit, TokenBuckets, default_limits
from auth_mcp.authorization.revocation import Revoker
from auth_mcp.scopes import DEFAULT_SCOPE, SUPPORTED_SCOPES
from auth_mcp.settings import Settings
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import prepare_schema, schema_status
from auth_mcp.storage.notifications import Announcer
from auth_mcp.storage.store import SqlStore
from auth_mcp.tools import ALL_TOOLS
from auth_mcp.tools.kit import SCOPES_META_KEY, ToolServices
from auth_mcp.resource.verifier import CachedVerifier

logger = logging.getLogger(__name__)

SERVER_NAME = "auth-mcp"
DEV_GITHUB_PATH = "/_dev/github"
CALLBACK_PATH = "/github/callback"
PURGE_INTERVAL = 300  # seconds between sweeps of expired rows
REGISTRATION_BODY_LIMIT = 16 * 1024  # RFC 7591 metadata is small; bound what a stranger can store
OAUTH_BODY_LIMIT = 64 * 1024


@dataclass
class Services:
    """The built parts, for the lifespan, the admin commands and tests."""

    settings: Settings
    store: SqlStore
    keyring: Keyring
    github: GitHubClient
    verifier: CachedVerifier
    revoker: Revoker
    provider: AuthServerProvider
    audience: Audience
    mcp: MCPServer
    dev_github: DevGitHub | None
    http: httpx.AsyncClient
    metrics: Metrics


def secret_key(settings: Settings) -> str:
    """AUTH_MCP_SECRET_KEY, or the key generated once beside the SQLite database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.sqlite_path
    if path is None:
        # In-memory SQLite: nothing persists, so neither need the key.
        import secrets

        return secrets.token_urlsafe(32)
    return load_or_create_key_file(path.with_name(path.name + ".key"))


def key_file_path(settings: Settings) -> Path | None:
    path = settings.sqlite_path
    return None if settings.secret_key is not None or path is None else path.with_name(path.name + ".key")


class _Asgi:
    """An ASGI callable as a Route endpoint (Starlette would treat a bound method as a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class _Shortcut:
    """Every tool call is a request to /mcp: hand it to that route's (guarded) app directly,
    without Starlette's exception layer and router, which only repeat what the SDK's transport
    does for itself (it answers its own errors). Everything else goes through the router."""

    def __init__(self, app: ASGIApp, *, route: Route) -> None:
        self._app = app
        self._route = route
        self._target = route.app
        self._path = route.path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self._path:
            scope["route"] = self._route  # as the router would set it (access log, metrics)
            await self._target(scope, receive, send)
        else:
            await self._app(scope, receive, send)


class _BrowserCors:
    """CORS on the MCP endpoint for exactly the configured browser origins (MCP Inspector 1.x in
    direct mode and other browser-based clients). Requests without an Origin skip it entirely."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Accept",
                "MCP-Protocol-Version",
                "Mcp-Session-Id",
                "Mcp-Method",
                "Mcp-Name",
                "Last-Event-ID",
            ],
            expose_headers=["Mcp-Session-Id", "WWW-Authenticate", "MCP-Protocol-Version"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if any(name == b"origin" for name, _ in scope["headers"]):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    github_http: httpx.AsyncClient | None = None,
    dev_github_options: DevGitHubOptions | None = None,
    metadata_documents: MetadataDocumentClients | None = None,
) -> Starlette:
    """Build the whole server. Fails fast (ValueError) on configuration it cannot serve.

    Tests replace the HTTP client used to reach GitHub (`github_http`), tune the built-in
    GitHub stand-in (`dev_github_options`), or give the metadata-document fetcher a fake
    network (`metadata_documents`).
    """
    clock = clock or SystemClock()
    issuer = settings.issuer
    keyring = Keyring.from_setting(secret_key(settings))
    pages = Pages(server_name=SERVER_NAME)
    callback_url = issuer + CALLBACK_PATH
    endpoint_path = "/mcp" if settings.transport == "streamable-http" else "/sse"
    audience = Audience(issuer=issuer, endpoint_path=endpoint_path)
    resource_metadata_url = str(build_resource_metadata_url(audience.canonical))  # type: ignore[arg-type]

    # GitHub: the real one, or the stand-in served by this same process.
    dev_github: DevGitHub | None = None
    if settings.dev_mode:
        options = dev_github_options or DevGitHubOptions(
            client_id="auth-mcp-dev", client_secret=keyring.mac("dev-github-client-secret"), callback_url=callback_url
        )
        dev_github = DevGitHub(options=options, signing_key=keyring.mac("dev-github-signing"), pages=pages, clock=clock)
        github_web, github_api = issuer + DEV_GITHUB_PATH, issuer + DEV_GITHUB_PATH + "/api/v3"
        client_id, client_secret = options.client_id, SecretStr(options.client_secret)
        # The server reaches its own stand-in in-process; browsers reach it over HTTP.
        stand_in = Router(routes=[Mount(DEV_GITHUB_PATH, app=dev_github.app)])
        http = github_http or httpx.AsyncClient(transport=httpx.ASGITransport(app=stand_in), timeout=DEFAULT_TIMEOUT)
    else:
        assert settings.github_client_id and settings.github_client_secret
        github_web, github_api = settings.github_url, settings.github_api_url
        client_id, client_secret = settings.github_client_id, settings.github_client_secret
        http = github_http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=httpx.Limits(max_connections=100))
    metrics = Metrics()
    github = GitHubClient(
        http=http,
        web_url=github_web,
        api_url=github_api,
        client_id=client_id,
        client_secret=client_secret,
        clock=clock,
        observer=metrics.github_call,
    )

    engine = create_engine(settings.database_url)
    store = SqlStore(engine=engine, clock=clock)
    verifier = CachedVerifier(store=store, clock=clock, issuer=issuer)
    announcer = Announcer(engine=engine, on_revoked=verifier.forget_grant, on_gap=verifier.forget_all)
    revoker = Revoker(
        store=store,
        verifier=verifier,
        github=github,
        keyring=keyring,
        revoke_at_github=settings.revoke_github_tokens,
        announce=announcer.announce,
    )
    documents = metadata_documents or MetadataDocumentClients(clock=clock)
    clients = ClientDirectory(store=store, keyring=keyring, documents=documents)
    policy = AccessPolicy(allowed_users=settings.allowed_users, allowed_orgs=settings.allowed_orgs)

    def person(grant_id: str) -> PersonGitHub:
        return PersonGitHub(grant_id=grant_id, store=store, keyring=keyring, github=github, revoker=revoker, clock=clock)

    provider = AuthServerProvider(
        store=store,
        clients=clients,
        verifier=verifier,
        revoker=revoker,
        audience=audience,
        clock=clock,
        issuer=issuer,
        access_token_ttl=settings.access_token_ttl,
        refresh_token_ttl=settings.refresh_token_ttl,
        metrics=metrics,
        recheck=MembershipRecheck(policy=policy, store=store, people=person) if policy.restricted else None,
    )
    browser = BrowserBinding(keyring=keyring, secure=urlsplit(issuer).scheme == "https")

    def github_scopes(mcp_scopes: Any) -> list[str]:
        # We ask GitHub for exactly the scopes the client was granted (plus what the allowlist needs).
        return list(dict.fromkeys([*mcp_scopes, *policy.github_scopes]))

    consent = Consent(
        store=store,
        clients=clients,
        github=github,
        keyring=keyring,
        browser=browser,
        pages=pages,
        clock=clock,
        issuer=issuer,
        callback_url=callback_url,
        github_scopes=github_scopes,
    )
    callback = GitHubCallback(
        metrics=metrics,
        store=store,
        clients=clients,
        github=github,
        policy=policy,
        keyring=keyring,
        browser=browser,
        pages=pages,
        clock=clock,
        issuer=issuer,
        callback_url=callback_url,
    )

    # The MCP server and its tools.
    tool_services = ToolServices(people=person)

    @contextlib.asynccontextmanager
    async def tool_lifespan(_server: MCPServer[ToolServices]) -> AsyncIterator[ToolServices]:
        yield tool_services

    mcp: MCPServer[ToolServices] = MCPServer(
        SERVER_NAME,
        title="GitHub through auth-mcp",
        instructions="Tools that act on GitHub as the person who signed in.",
        lifespan=tool_lifespan,
        log_level=settings.log_level,
    )
    for spec in ALL_TOOLS:
        mcp.add_tool(
            spec.fn,
            name=spec.name,
            title=spec.title,
            description=spec.description,
            meta={SCOPES_META_KEY: list(spec.scopes)},
        )
    # Our own guard checks Host and Origin (dns_rebinding.py); the SDK's would refuse proxies.
    no_sdk_guard = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    # The MCP endpoint: Host/Origin checks, then (for configured browser origins) CORS, then the
    # bearer token, then the SDK's transport. Only this endpoint passes through these guards.
    def guarded(transport: ASGIApp, *, streamable: bool) -> ASGIApp:
        app: ASGIApp = BearerGuard(
            transport,
            verifier=verifier,
            audience=audience,
            resource_metadata_url=resource_metadata_url,
            default_scopes=[DEFAULT_SCOPE],
            tool_scopes={spec.name: spec.scopes for spec in ALL_TOOLS},
            metrics=metrics,
            trust_routing_headers=streamable,
        )
        if settings.allowed_origins:
            app = _BrowserCors(app, origins=list(settings.allowed_origins))
        return DnsRebindingGuard(
            app, issuer=issuer, allowed_hosts=settings.allowed_hosts, allowed_origins=settings.allowed_origins
        )

    transport_routes: list[BaseRoute]  # matched before the OAuth routes
    fallback_routes: list[BaseRoute] = []  # matched after them
    if settings.transport == "streamable-http":
        mcp.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=no_sdk_guard
        )
        # The session manager's ASGI handler behind the guards; _Shortcut takes /mcp straight there.
        transport_routes = [Route("/mcp", guarded(mcp.session_manager.handle_request, streamable=True))]
    else:
        sse_app = mcp.sse_app(sse_path="/sse", message_path="/messages/", transport_security=no_sdk_guard)
        # The SDK's SSE app routes /sse and /messages/ itself; it is mounted last, behind the guards.
        transport_routes = []
        fallback_routes = [Mount("", app=guarded(sse_app, streamable=False))]

    services = Services(
        settings=settings,
        store=store,
        keyring=keyring,
        github=github,
        verifier=verifier,
        revoker=revoker,
        provider=provider,
        audience=audience,
        mcp=mcp,
        dev_github=dev_github,
        http=http,
        metrics=metrics,
    )

    # The MCP endpoint first: it is matched on every tool call.
    routes: list[BaseRoute] = list(transport_routes)
    limits = default_limits(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else {}
    buckets = TokenBuckets(clock=clock)

    def rate_limited(path: str, app: ASGIApp) -> ASGIApp:
        limit = limits.get(path)
        return app if limit is None else RateLimit(app, name=path, limit=limit, buckets=buckets)

    routes += _oauth_routes(
        rate_limited=rate_limited,
        provider=provider,
        clients=clients,
        issuer=issuer,
        audience=audience,
        pages=pages,
        resource_scopes=[DEFAULT_SCOPE],
    )
    routes += [
        Route("/consent", _Asgi(rate_limited("/consent", request_response(consent.show))), methods=["GET"]),
        Route("/consent", _Asgi(rate_limited("/consent", request_response(consent.decide))), methods=["POST"]),
        Route(CALLBACK_PATH, _Asgi(rate_limited(CALLBACK_PATH, request_response(callback.handle))), methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz(engine), methods=["GET"]),
        *([Route("/metrics", metrics.endpoint, methods=["GET"])] if settings.metrics else []),
    ]
    if dev_github is not None:
        routes.append(Mount(DEV_GITHUB_PATH, app=dev_github.app))
    routes += fallback_routes

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await prepare_schema(engine, upgrade_outdated=settings.is_sqlite)
        await announcer.start()
        purger = asyncio.create_task(_purge_forever(store))
        # Everything built so far lives as long as the process: move it out of the cyclic garbage
        # collector's generations, so collections during traffic scan only per-request objects.
        gc.collect()
        gc.freeze()
        try:
            if settings.transport == "streamable-http":
                async with mcp.session_manager.run():
                    yield
            else:
                yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await announcer.stop()
            if github_http is None:
                await http.aclose()
            if metadata_documents is None:
                await documents.aclose()
            await engine.dispose()

    middleware = []
    if settings.trusted_proxies:
        # X-Forwarded-For / -Proto only from the configured proxies (uvicorn's implementation).
        middleware.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies)))
    # One log line per request, with the path but never the query string.
    middleware.append(Middleware(AccessLog, metrics=metrics))
    for route in transport_routes:
        if isinstance(route, Route):
            middleware.append(Middleware(_Shortcut, route=route))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.services = services
    return app


def _oauth_routes(
    *,
    rate_limited: Callable[[str, ASGIApp], ASGIApp],
    provider: AuthServerProvider,
    clients: ClientDirectory,
    issuer: str,
    audience: Audience,
    pages: Pages,
    resource_scopes: list[str],
) -> list[BaseRoute]:
    metadata = build_metadata(
        issuer,  # type: ignore[arg-type]  # a str keeps the issuer exact (no trailing slash)
        None,
        ClientRegistrationOptions(enabled=True),
        RevocationOptions(enabled=True),
    )
    metadata = metadata.model_copy(
        update={
            "scopes_supported": list(SUPPORTED_SCOPES),
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            # RFC 9207 §3: every authorization response carries iss.
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
        }
    )
    resource_metadata = ProtectedResourceMetadata(
        resource=audience.canonical,  # type: ignore[arg-type]
        authorization_servers=[issuer],  # type: ignore[list-item]
        scopes_supported=resource_scopes,
        resource_name=SERVER_NAME,
    )
    prm = _public(request_response(ProtectedResourceMetadataHandler(resource_metadata).handle), ["GET", "OPTIONS"])
    prm_path = urlsplit(str(build_resource_metadata_url(audience.canonical))).path  # type: ignore[arg-type]
    registration = RegistrationHandler(provider, options=ClientRegistrationOptions(enabled=True))
    post = ["POST", "OPTIONS"]
    return [
        Route(
            "/.well-known/oauth-authorization-server",
            _public(request_response(MetadataHandler(metadata).handle), ["GET", "OPTIONS"]),
            methods=["GET", "OPTIONS"],
        ),
        # RFC 9728 §3.1: at the resource's path; also at the root for clients that look there.
        Route(prm_path, prm, methods=["GET", "OPTIONS"]),
        Route("/.well-known/oauth-protected-resource", prm, methods=["GET", "OPTIONS"]),
        Route(
            "/authorize",
            rate_limited("/authorize", _body_limited(AuthorizeEndpoint(provider=provider, clients=clients, issuer=issuer, pages=pages), OAUTH_BODY_LIMIT)),
            methods=["GET", "POST"],
        ),
        Route(
            "/token",
            _public(rate_limited("/token", _body_limited(TokenEndpoint(provider=provider, audience=audience), OAUTH_BODY_LIMIT)), post),
            methods=post,
        ),
        Route("/register", _public(rate_limited("/register", _body_limited(registration.handle, REGISTRATION_BODY_LIMIT)), post), methods=post),
        Route("/revoke", _public(rate_limited("/revoke", _body_limited(RevokeEndpoint(provider=provider), OAUTH_BODY_LIMIT)), post), methods=post),
    ]


def _public(app: ASGIApp, methods: list[str]) -> ASGIApp:
    """CORS for any origin, as the SDK does for endpoints browser-based OAuth clients call
    themselves (metadata, token, registration, revocation). None of them uses cookies."""
    return CORSMiddleware(app=app, allow_origins="*", allow_methods=methods, allow_headers=[MCP_PROTOCOL_VERSION_HEADER])


def _body_limited(handler: Any, limit: int) -> ASGIApp:
    """A request handler whose body may not exceed `limit` bytes (413 otherwise)."""
    return RequestBodyLimitMiddleware(request_response(handler), limit)


async def _healthz(_request: Request) -> Response:
    """Alive: the process answers HTTP."""
    return JSONResponse({"status": "ok"})


def _readyz(engine: Any) -> Any:
    """Ready: the database answers and its schema is the one this code needs."""

    async def readyz(_request: Request) -> Response:
        try:
            async with asyncio.timeout(5):
                status = await schema_status(engine)
        except Exception as exc:  # noqa: BLE001 - any failure to reach the database means not ready
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        if status.state != "current":
            body = {"status": "unavailable", "schema": status.state, "current": status.current, "needed": status.head}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "schema": status.current})

    return readyz


async def _purge_forever(store: SqlStore) -> None:
    while True:
        try:
            counts = await store.purge_expired()
            if counts.total:
                logger.info("purged %d expired rows (%s)", counts.total, counts)
        except Exception:  # noqa: BLE001 - a failed sweep is retried at the next interval
            logger.exception("purging expired rows failed")
        await asyncio.sleep(PURGE_INTERVAL)
