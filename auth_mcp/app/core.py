"""The parts every side of the server shares: keys, storage, verification, revocation, GitHub."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_mcp.app.github import GitHubSide, build_github
from auth_mcp.authorization.revocation import Revoker
from auth_mcp.clock import Clock
from auth_mcp.crypto import Keyring, resolve_secret
from auth_mcp.gateway.config import GatewayConfig, load_gateway_config
from auth_mcp.github.devserver import DevGitHubOptions
from auth_mcp.github.person import PersonGitHub
from auth_mcp.http.log_writer import LogWriter
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.pages import Pages
from auth_mcp.http.rate_limit import BEARER_FAILURES, FailureBudget, TokenBuckets, default_limits
from auth_mcp.resource.audience import Audience, Resources
from auth_mcp.resource.sse_sessions import SseSessions
from auth_mcp.resource.verifier import CachedVerifier
from auth_mcp.settings import Settings
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.notifications import Announcer
from auth_mcp.storage.store import SqlStore

SERVER_NAME = "auth-mcp"

CALLBACK_PATH = "/github/callback"


@dataclass
class Core:
    settings: Settings
    clock: Clock
    keyring: Keyring
    pages: Pages
    metrics: Metrics
    audience: Audience
    resources: Resources  # the built-in endpoint's audience, then each gateway upstream's
    gateway_config: GatewayConfig | None
    github: GitHubSide
    engine: AsyncEngine
    store: SqlStore
    verifier: CachedVerifier
    announcer: Announcer
    revoker: Revoker
    sse_sessions: SseSessions
    bearer_failures: FailureBudget | None  # one per-address budget for failed bearer checks, every endpoint
    log_writer: LogWriter  # access and audit lines, written off the event loop (started by the lifespan)

    def people(self, grant_id: str) -> PersonGitHub:
        """GitHub as the person behind one grant."""
        return PersonGitHub(
            grant_id=grant_id,
            store=self.store,
            keyring=self.keyring,
            github=self.github.client,
            revoker=self.revoker,
            clock=self.clock,
        )


def build_core(
    settings: Settings,
    *,
    clock: Clock,
    github_http: httpx.AsyncClient | None,
    dev_github_options: DevGitHubOptions | None,
) -> Core:
    issuer = settings.issuer
    keyring = Keyring.from_setting(resolve_secret(settings.secret_key, key_file=settings.key_file))
    pages = Pages(server_name=SERVER_NAME)
    metrics = Metrics()
    github = build_github(
        settings,
        keyring=keyring,
        pages=pages,
        metrics=metrics,
        clock=clock,
        callback_url=issuer + CALLBACK_PATH,
        http=github_http,
        dev_options=dev_github_options,
    )
    engine = create_engine(settings.database_url)
    store = SqlStore(engine=engine, clock=clock)
    verifier = CachedVerifier(store=store, clock=clock, issuer=issuer)

    async def grant_exists(grant_id: str) -> bool:
        return await store.get_grant(grant_id) is not None

    sse_sessions = SseSessions(grant_exists=grant_exists)

    def grant_changed(grant_id: str) -> None:
        # Another process revoked or rotated the grant: drop its cached tokens; end its streams if gone.
        verifier.forget_grant(grant_id)
        sse_sessions.grant_changed(grant_id)

    announcer = Announcer(engine=engine, on_revoked=grant_changed, on_gap=verifier.forget_all)
    revoker = Revoker(
        store=store,
        verifier=verifier,
        github=github.client,
        keyring=keyring,
        revoke_at_github=settings.revoke_github_tokens,
        announce=announcer.announce,
        on_revoked=sse_sessions.close_grant,
    )
    endpoint_path = "/mcp" if settings.transport == "streamable-http" else "/sse"
    audience = Audience(issuer=issuer, endpoint_path=endpoint_path)
    gateway_config = load_gateway_config(settings.gateway_config) if settings.gateway_config else None
    upstreams = gateway_config.upstreams.values() if gateway_config else ()
    # Each upstream is its own resource, accepting only itself (no aliases).
    resources = Resources([audience, *(Audience(issuer=issuer, endpoint_path=up.path, aliases=False) for up in upstreams)])
    return Core(
        settings=settings,
        clock=clock,
        keyring=keyring,
        pages=pages,
        metrics=metrics,
        audience=audience,
        resources=resources,
        gateway_config=gateway_config,
        github=github,
        engine=engine,
        store=store,
        verifier=verifier,
        announcer=announcer,
        revoker=revoker,
        sse_sessions=sse_sessions,
        bearer_failures=_bearer_failures(settings, clock),
        log_writer=LogWriter(),
    )


def _bearer_failures(settings: Settings, clock: Clock) -> FailureBudget | None:
    if not settings.rate_limit_per_minute:
        return None
    limit = default_limits(settings.rate_limit_per_minute)[BEARER_FAILURES]
    return FailureBudget(name=BEARER_FAILURES, limit=limit, buckets=TokenBuckets(clock=clock))
