"""The gateway side: each upstream of AUTH_MCP_GATEWAY_CONFIG at /mcp/NAME, behind the same guards
as the built-in endpoint, with its own Protected Resource Metadata; and the JWK Set."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from auth_mcp.app.audit import AuditSide
from auth_mcp.app.authorization import protected_resource_routes
from auth_mcp.app.core import SERVER_NAME, Core
from auth_mcp.app.policy import PolicySide
from auth_mcp.app.resource import endpoint_guards
from auth_mcp.gateway.builder import Gateway, build_gateway
from auth_mcp.gateway.config import Upstream
from auth_mcp.gateway.signing import SEED_BYTES
from auth_mcp.http.logs import request_id


def build_gateway_side(core: Core, *, policy: PolicySide, audit: AuditSide) -> Gateway | None:
    """The gateway's parts, or None when no AUTH_MCP_GATEWAY_CONFIG is set (or it names no
    upstream); each upstream's proxy asks its policy and records its tool calls (`audit.gate`)."""
    config = core.gateway_config
    if config is None or not config.upstreams:  # none, or a file of built-in tool rules only
        return None

    def protect(app: ASGIApp, upstream: Upstream) -> ASGIApp:
        audience = core.resources.find(core.settings.issuer + upstream.path)
        assert audience is not None  # core.resources has one audience per upstream
        # Tokens need the upstream's scopes for every request; the bearer guard reads the
        # routing headers of 2026-07-28 requests as on /mcp (the SDKs that send them check them).
        guarded = endpoint_guards(
            core,
            audience=audience,
            scopes=upstream.scopes,
            tool_scopes={},
            streamable=True,
            required_scopes=upstream.scopes,
            upstream=True,
        )
        return guarded(app)

    async def github_token(grant_id: str) -> str:
        return await core.people(grant_id).access_token()

    return build_gateway(
        config=config,
        issuer=core.settings.issuer,
        # HKDF per purpose (crypto.py): these keys are independent of every other use of the secret.
        signing_seeds=core.keyring.derive_all("gateway/identity-signing", length=SEED_BYTES),
        session_keys=core.keyring.derive_all("gateway/session-seal"),
        clock=core.clock,
        protect=protect,
        github_tokens=github_token,
        request_id=request_id.get,
        gates=lambda upstream: audit.gate(upstream.name, policy.access(upstream.name)),
    )


def gateway_routes(core: Core, gateway: Gateway) -> list[BaseRoute]:
    """Each upstream's endpoint and Protected Resource Metadata, and the JWK Set."""
    routes: list[BaseRoute] = list(gateway.routes)
    issuer = core.settings.issuer
    for upstream in gateway.config.upstreams.values():
        audience = core.resources.find(issuer + upstream.path)
        assert audience is not None
        name = f"{upstream.name} through {SERVER_NAME}"
        routes += protected_resource_routes(audience, issuer=issuer, scopes=list(upstream.scopes), name=name, at_root=False)
    return routes


async def upstream_readiness(gateway: Gateway) -> dict[str, Any]:
    """Each upstream's reachability, for /readyz."""
    return {status.name: status.as_json() for status in await gateway.health.check()}
