"""`build_gateway`: the gateway's parts for `create_app`, from the configuration file.

What it hands back: the routes (each upstream's guarded endpoint and its Protected Resource
Metadata, and the JWK Set), the audiences the authorization server must accept as resources,
the readiness probe, and the HTTP client to close at shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp

from auth_mcp.clock import Clock
from auth_mcp.gateway.config import GatewayConfig, Upstream
from auth_mcp.gateway.health import UpstreamHealth
from auth_mcp.gateway.identity import IdentityTokens
from auth_mcp.gateway.proxy import GitHubTokenSource, RequestId, UpstreamProxy
from auth_mcp.gateway.sessions import SessionSeal
from auth_mcp.gateway.signing import SigningKeys

JWKS_PATH = "/.well-known/jwks.json"
MAX_CONNECTIONS = 1000

# (app, upstream, resource, resource_metadata_url) -> the app behind Host/Origin checks, CORS and
# the bearer guard for that resource: the same protection as /mcp, built by the wiring.
Protect = Callable[[ASGIApp, Upstream, str, str], ASGIApp]


@dataclass
class Gateway:
    config: GatewayConfig
    keys: SigningKeys
    health: UpstreamHealth
    http: httpx.AsyncClient
    resources: list[str]  # {issuer}/mcp/NAME for each upstream: what tokens may be issued for
    jwks_uri: str
    routes: list[BaseRoute] = field(default_factory=list)
    proxies: dict[str, UpstreamProxy] = field(default_factory=dict)

    async def aclose(self) -> None:
        await self.http.aclose()


def build_gateway(
    *,
    config: GatewayConfig,
    issuer: str,
    signing_seeds: Sequence[bytes],
    session_keys: Sequence[bytes],
    clock: Clock,
    protect: Protect,
    github_tokens: GitHubTokenSource,
    request_id: RequestId,
    http: httpx.AsyncClient | None = None,
) -> Gateway:
    keys = SigningKeys(seeds_newest_first=signing_seeds)
    identity = IdentityTokens(keys=keys, issuer=issuer, clock=clock)
    sessions = SessionSeal(keys_newest_first=session_keys)
    # One connection pool for every upstream; each request carries its upstream's timeouts.
    # trust_env=False: no proxy or netrc from the environment may intercept identity tokens.
    client = http or httpx.AsyncClient(
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=100),
        follow_redirects=False,
        trust_env=False,
    )
    upstreams = list(config.upstreams.values())
    gateway = Gateway(
        config=config,
        keys=keys,
        health=UpstreamHealth(upstreams=upstreams, http=client, clock=clock),
        http=client,
        resources=[issuer + upstream.path for upstream in upstreams],
        jwks_uri=issuer + JWKS_PATH,
    )
    for upstream in upstreams:
        resource = issuer + upstream.path
        metadata_url = str(build_resource_metadata_url(resource))  # type: ignore[arg-type]
        proxy = UpstreamProxy(
            upstream=upstream,
            http=client,
            identity=identity,
            sessions=sessions,
            github_tokens=github_tokens,
            request_id=request_id,
        )
        gateway.proxies[upstream.name] = proxy
        gateway.routes.append(Route(upstream.path, _Endpoint(protect(proxy, upstream, resource, metadata_url))))
        metadata = ProtectedResourceMetadata(
            resource=resource,  # type: ignore[arg-type]
            authorization_servers=[issuer],  # type: ignore[list-item]
            scopes_supported=list(upstream.scopes),
            resource_name=f"{upstream.name} through auth-mcp",
        )
        prm = request_response(ProtectedResourceMetadataHandler(metadata).handle)
        gateway.routes.append(Route(urlsplit(metadata_url).path, _Endpoint(prm), methods=["GET"]))
    gateway.routes.append(Route(JWKS_PATH, _jwks(keys), methods=["GET"]))
    return gateway


class _Endpoint:
    """An ASGI app as a Route endpoint (Starlette would treat a function as a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await self._app(scope, receive, send)


def _jwks(keys: SigningKeys) -> Callable[[Request], Response]:
    body = keys.jwks_json

    async def jwks(_request: Request) -> Response:
        # RFC 7517 §8.5: application/jwk-set+json. Cacheable briefly: a rotation publishes the
        # next key well before it signs (signing.py), so a few minutes of caching is safe.
        return Response(
            body,
            media_type="application/jwk-set+json",
            headers={"cache-control": "public, max-age=300", "access-control-allow-origin": "*"},
        )

    return jwks  # type: ignore[return-value]
