"""`build_gateway`: the gateway's parts for `create_app`, from the configuration file.

What it hands back: the routes (each upstream's endpoint, behind the guards the wiring puts
around it, and the JWK Set), the readiness probe, and the HTTP client to close at shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from auth_mcp.clock import Clock
from auth_mcp.gateway.config import GatewayConfig, Upstream
from auth_mcp.gateway.health import UpstreamHealth
from auth_mcp.gateway.identity import IdentityTokens
from auth_mcp.gateway.proxy import GitHubTokenSource, RequestId, UpstreamProxy
from auth_mcp.gateway.sessions import SessionSeal
from auth_mcp.gateway.signing import SigningKeys
from auth_mcp.gateway.tool_gate import ToolGate
from auth_mcp.gateway.upstream_http import Target, UpstreamHttp
from auth_mcp.http.routing import AsgiEndpoint

JWKS_PATH = "/.well-known/jwks.json"

# (app, upstream) -> the app behind Host/Origin checks, CORS and the bearer guard for the
# upstream's resource: the same protection as /mcp, built by the wiring.
Protect = Callable[[ASGIApp, Upstream], ASGIApp]
# upstream -> its tool policy and audit trail (tool_gate.py), built by the wiring.
Gates = Callable[[Upstream], ToolGate | None]


@dataclass
class Gateway:
    config: GatewayConfig
    keys: SigningKeys
    health: UpstreamHealth
    http: UpstreamHttp  # the forwarded calls and the readiness probes (health.py)
    jwks_uri: str
    routes: list[BaseRoute] = field(default_factory=list)
    endpoints: list[Route] = field(default_factory=list)  # each upstream's MCP endpoint (among `routes`)
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
    gates: Gates | None = None,
) -> Gateway:
    keys = SigningKeys(seeds_newest_first=signing_seeds)
    identity = IdentityTokens(keys=keys, issuer=issuer, clock=clock)
    sessions = SessionSeal(keys_newest_first=session_keys)
    # One connection pool for every upstream; each request carries its upstream's timeouts.
    client = UpstreamHttp()
    upstreams = list(config.upstreams.values())
    targets = upstream_targets(upstreams)
    gateway = Gateway(
        config=config,
        keys=keys,
        health=UpstreamHealth(upstreams=upstreams, targets=targets, http=client, clock=clock),
        http=client,
        jwks_uri=issuer + JWKS_PATH,
    )
    for upstream in upstreams:
        proxy = UpstreamProxy(
            upstream=upstream,
            target=targets[upstream.name],
            http=client,
            identity=identity,
            sessions=sessions,
            github_tokens=github_tokens,
            request_id=request_id,
            gate=gates(upstream) if gates is not None else None,
        )
        gateway.proxies[upstream.name] = proxy
        endpoint = Route(upstream.path, AsgiEndpoint(protect(proxy, upstream)))
        gateway.endpoints.append(endpoint)
        gateway.routes.append(endpoint)
    gateway.routes.append(Route(JWKS_PATH, _jwks(keys), methods=["GET"]))
    return gateway


def upstream_targets(upstreams: Sequence[Upstream]) -> dict[str, Target]:
    """Where each upstream's requests go, and whom its certificate must chain to."""
    return {upstream.name: Target.of(upstream.url, ca_file=upstream.ca_file) for upstream in upstreams}


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
