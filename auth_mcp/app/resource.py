"""The MCP resource server: the tools, and the MCP endpoint behind its guards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from auth_mcp.app.audit import AuditSide
from auth_mcp.app.core import SERVER_NAME, Core
from auth_mcp.audit.builtin import BuiltinToolAudit
from auth_mcp.github.person import PersonGitHub
from auth_mcp.http.cors import BrowserCors
from auth_mcp.http.dns_rebinding import DnsRebindingGuard
from auth_mcp.http.logs import request_id
from auth_mcp.http.routing import AsgiEndpoint
from auth_mcp.policy import ToolAccess
from auth_mcp.policy.builtin import BuiltinToolPolicy
from auth_mcp.resource.audience import Audience
from auth_mcp.resource.bearer import BearerGuard
from auth_mcp.resource.stateless_stream import NoServerStream
from auth_mcp.resource.verifier import McpAccessToken
from auth_mcp.scopes import DEFAULT_SCOPE
from auth_mcp.settings import Settings
from auth_mcp.tools.kit import SCOPES_META_KEY, ToolServices, ToolSpec
from auth_mcp.version import package_version

# The MCP endpoint's guards, outermost first. Each one's place has a reason, which
# tests/app/test_layers.py checks:
# - host_origin: a request from a foreign Origin (DNS rebinding) is refused with 403 before
#   anything else answers, so it never learns whether a token would be needed (401);
# - browser_cors: a CORS preflight from a configured browser origin carries no token, so it is
#   answered before the bearer check, which would refuse it with 401;
# - bearer: the token is checked (and removed from the request) before the SDK's transport, so
#   neither the transport nor any tool ever sees it;
# - streams: streams are bounded by who opened them, so this comes after the bearer check: the
#   stateless endpoint answers GET with 405 (no stream at all), the SSE transport counts streams
#   per grant and address and binds each session to its grant.
MCP_ENDPOINT_LAYERS: tuple[str, ...] = ("host_origin", "browser_cors", "bearer", "streams")


@dataclass
class ResourceServer:
    mcp: MCPServer[ToolServices]
    routes: list[BaseRoute]  # matched before every other route
    fallback_routes: list[BaseRoute]  # matched after every other route
    shortcut: Route | None  # the route tool calls take, past the router


def check_tool_scopes(tools: Sequence[ToolSpec], offered_scopes: Sequence[str]) -> None:
    """Every scope a tool needs must be one the server offers: otherwise no client could ever call it."""
    offered = set(offered_scopes)
    for tool in tools:
        unknown = [scope for scope in tool.scopes if scope not in offered]
        if unknown:
            raise ValueError(
                f"The tool {tool.name!r} needs the scope {', '.join(unknown)}, which this server does not offer "
                f"(it offers {', '.join(offered_scopes)}): pass it in create_app(..., scopes=...) or fix the tool's scopes."
            )
    names = [tool.name for tool in tools]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Two tools are named {', '.join(duplicates)}: tool names must be unique.")


def build_mcp_server(
    settings: Settings, *, tools: Sequence[ToolSpec], people: Callable[[str], PersonGitHub]
) -> MCPServer[ToolServices]:
    services = ToolServices(people=people)

    @contextlib.asynccontextmanager
    async def tool_lifespan(_server: MCPServer[ToolServices]) -> AsyncIterator[ToolServices]:
        yield services

    mcp: MCPServer[ToolServices] = MCPServer(
        SERVER_NAME,
        title="GitHub through auth-mcp",
        instructions="Tools that act on GitHub as the person who signed in.",
        lifespan=tool_lifespan,
        log_level=settings.log_level,
        # initialize's serverInfo.version: the installed package's version.
        version=package_version(),
        website_url=settings.issuer,
    )
    for spec in tools:
        mcp.add_tool(
            spec.fn, name=spec.name, title=spec.title, description=spec.description, meta={SCOPES_META_KEY: list(spec.scopes)}
        )
    return mcp


def endpoint_guards(
    core: Core,
    *,
    audience: Audience,
    scopes: Sequence[str],
    tool_scopes: Mapping[str, Sequence[str]],
    streamable: bool,
    required_scopes: Sequence[str] = (),
    upstream: bool = False,
    on_insufficient_scope: Callable[[McpAccessToken, list[str], tuple[str, ...]], None] | None = None,
) -> Callable[[ASGIApp], ASGIApp]:
    """Wraps an MCP endpoint (the built-in one, or a gateway `upstream`'s) in MCP_ENDPOINT_LAYERS.
    An upstream's streams are its own (GET streams pass through) and the gateway bounds them per
    person (gateway/streams.py), so its `streams` layer is the pass-through itself.
    `on_insufficient_scope` hears of each call the bearer guard refuses with 403 (the audit trail)."""
    settings = core.settings
    # The layers named in MCP_ENDPOINT_LAYERS, each wrapping what is inside it.
    layers: dict[str, Callable[[ASGIApp], ASGIApp]] = {
        "bearer": lambda app: BearerGuard(
            app,
            verifier=core.verifier,
            audience=audience,
            resource_metadata_url=str(build_resource_metadata_url(audience.canonical)),  # type: ignore[arg-type]
            default_scopes=scopes,
            tool_scopes=tool_scopes,
            metrics=core.metrics,
            trust_routing_headers=streamable,
            failures=core.bearer_failures,
            required_scopes=required_scopes,
            offer_step_up=upstream,  # the upstream's tool policy may find scopes missing (gateway/proxy.py)
            on_insufficient_scope=on_insufficient_scope,
        ),
        "browser_cors": lambda app: (
            BrowserCors(app, origins=list(settings.allowed_origins)) if settings.allowed_origins else app
        ),
        "streams": lambda app: (
            app if upstream else NoServerStream(app) if streamable else core.sse_sessions.guard(app)
        ),
        "host_origin": lambda app: DnsRebindingGuard(
            app, issuer=settings.issuer, allowed_hosts=settings.allowed_hosts, allowed_origins=settings.allowed_origins
        ),
    }

    def guarded(transport: ASGIApp) -> ASGIApp:
        for name in reversed(MCP_ENDPOINT_LAYERS):
            transport = layers[name](transport)
        return transport

    return guarded


def build_resource_server(core: Core, *, tools: Sequence[ToolSpec], policy: ToolAccess, audit: AuditSide) -> ResourceServer:
    settings = core.settings
    mcp = build_mcp_server(settings, tools=tools, people=core.people)
    # Inside the SDK, around each request's handler: the audit trail outermost, so that it also
    # records the calls the policy refuses; the policy only when [[builtin.tools]] rules exist.
    auditor = BuiltinToolAudit(
        recorder=audit.recorder, clock=core.clock, request_id=request_id, arguments_max_bytes=audit.arguments_max_bytes
    )
    mcp.middleware.append(auditor)
    if policy.restricted:
        mcp.middleware.append(BuiltinToolPolicy(policy))
    streamable = settings.transport == "streamable-http"
    guarded = endpoint_guards(
        core,
        audience=core.audience,
        scopes=[DEFAULT_SCOPE],
        # A rule's scopes add to the tool's own; both are checked at the HTTP layer (403 step-up).
        tool_scopes={spec.name: tuple(dict.fromkeys([*spec.scopes, *policy.scopes_for(spec.name)])) for spec in tools},
        streamable=streamable,
        on_insufficient_scope=auditor.refused_for_scope,
    )
    # Our own guard checks Host and Origin (dns_rebinding.py); the SDK's would refuse proxies.
    no_sdk_guard = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if streamable:
        mcp.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=no_sdk_guard
        )
        # The session manager's ASGI handler behind the guards; the shortcut takes /mcp straight there.
        route = Route("/mcp", guarded(mcp.session_manager.handle_request))
        return ResourceServer(mcp=mcp, routes=[route], fallback_routes=[], shortcut=route)
    # The SDK's SSE app routes /sse and /messages/ itself; exactly those two paths reach it, behind
    # the guards. Any other path (/mcp included) is not this resource: 404, not an OAuth challenge
    # that would send a streamable-HTTP client into a sign-in that cannot succeed.
    sse_app = AsgiEndpoint(guarded(mcp.sse_app(sse_path="/sse", message_path="/messages/", transport_security=no_sdk_guard)))
    routes: list[BaseRoute] = [Route("/sse", sse_app, methods=["GET"]), Route("/messages/", sse_app, methods=["POST"])]
    return ResourceServer(mcp=mcp, routes=[], fallback_routes=routes, shortcut=None)
