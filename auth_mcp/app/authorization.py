"""The authorization server's parts and routes: metadata, /authorize, /token, /register,
/revoke, the consent page and GitHub's callback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.routes import build_metadata, build_resource_metadata_url
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp

from auth_mcp.app.core import CALLBACK_PATH, Core
from auth_mcp.authorization.access_policy import AccessPolicy, MembershipRecheck
from auth_mcp.authorization.account import (
    ACCOUNT_PATH,
    REVOKE_PATH,
    SIGN_IN_PATH,
    SIGN_OUT_PATH,
    AccountPages,
)
from auth_mcp.authorization.account import CALLBACK_SUFFIX as ACCOUNT_CALLBACK_SUFFIX
from auth_mcp.authorization.browser import BrowserBinding
from auth_mcp.authorization.callback import GitHubCallback
from auth_mcp.authorization.cimd import MetadataDocumentClients
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.consent import Consent
from auth_mcp.authorization.endpoints import AuthorizeEndpoint, RevokeEndpoint, TokenEndpoint
from auth_mcp.authorization.provider import AuthServerProvider
from auth_mcp.http.cors import public_cors
from auth_mcp.http.pages import Pages
from auth_mcp.http.routing import AsgiEndpoint, NoStore, body_limited
from auth_mcp.resource.audience import Audience

# Bodies are bounded before anything parses them (a 256 MB consent form once cost 222 MiB).
REGISTRATION_BODY_LIMIT = 16 * 1024  # RFC 7591 metadata is small; bound what a stranger can store
OAUTH_BODY_LIMIT = 16 * 1024  # /authorize, /token, /revoke: a few parameters, a JWT assertion at most
CONSENT_BODY_LIMIT = 4 * 1024  # the consent form: a request id, a CSRF token and the decision
AUTH_METHODS = ["none", "client_secret_post", "client_secret_basic"]

RateLimited = Callable[[str, ASGIApp], ASGIApp]  # (path, app) -> the app behind that path's rate limit


@dataclass
class AuthorizationServer:
    provider: AuthServerProvider
    clients: ClientDirectory
    consent: Consent
    callback: GitHubCallback
    account: AccountPages


def build_authorization_server(
    core: Core, *, documents: MetadataDocumentClients, offered_scopes: Sequence[str]
) -> AuthorizationServer:
    settings, store, keyring, clock = core.settings, core.store, core.keyring, core.clock
    github, pages, metrics = core.github.client, core.pages, core.metrics
    issuer = settings.issuer
    clients = ClientDirectory(
        store=store, keyring=keyring, documents=documents, offered_scopes=offered_scopes, max_unused=settings.max_unused_clients
    )
    policy = AccessPolicy(allowed_users=settings.allowed_users, allowed_orgs=settings.allowed_orgs)
    provider = AuthServerProvider(
        store=store,
        clients=clients,
        verifier=core.verifier,
        revoker=core.revoker,
        audience=core.audience,
        clock=clock,
        issuer=issuer,
        access_token_ttl=settings.access_token_ttl,
        refresh_token_ttl=settings.refresh_token_ttl,
        metrics=metrics,
        max_pending=settings.max_pending_authorizations,
        recheck=MembershipRecheck(policy=policy, store=store, people=core.people) if policy.restricted else None,
    )
    browser = BrowserBinding(keyring=keyring, secure=urlsplit(issuer).scheme == "https")

    def github_scopes(mcp_scopes: Sequence[str]) -> list[str]:
        # We ask GitHub for exactly the scopes the client was granted (plus what the allowlist needs).
        return list(dict.fromkeys([*mcp_scopes, *policy.github_scopes]))

    callback_url = issuer + CALLBACK_PATH
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
        store=store,
        clients=clients,
        github=github,
        policy=policy,
        keyring=keyring,
        browser=browser,
        pages=pages,
        metrics=metrics,
        clock=clock,
        issuer=issuer,
        callback_url=callback_url,
    )
    account = AccountPages(
        grants=store,
        revoker=core.revoker,
        github=github,
        keyring=keyring,
        browser=browser,
        pages=pages,
        clock=clock,
        issuer=issuer,
        callback_url=callback_url,
    )
    return AuthorizationServer(provider=provider, clients=clients, consent=consent, callback=callback, account=account)


def authorization_server_metadata(issuer: str, *, offered_scopes: Sequence[str]) -> OAuthMetadata:
    """RFC 8414 metadata, as the SDK builds it, with what this server adds."""
    metadata = build_metadata(
        issuer,  # type: ignore[arg-type]  # a str keeps the issuer exact (no trailing slash)
        None,
        ClientRegistrationOptions(enabled=True),
        RevocationOptions(enabled=True),
    )
    return metadata.model_copy(
        update={
            "scopes_supported": list(offered_scopes),
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            # RFC 9207 §3: every authorization response carries iss.
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
        }
    )


def protected_resource_routes(audience: Audience, *, issuer: str, scopes: list[str], name: str) -> list[BaseRoute]:
    """RFC 9728 metadata of one resource, at its path; also at the root for clients that look there."""
    resource_metadata = ProtectedResourceMetadata(
        resource=audience.canonical,
        authorization_servers=[issuer],
        scopes_supported=scopes,
        resource_name=name,
    )
    prm = public_cors(request_response(ProtectedResourceMetadataHandler(resource_metadata).handle), ["GET", "OPTIONS"])
    path = urlsplit(str(build_resource_metadata_url(audience.canonical))).path  # type: ignore[arg-type]
    return [
        Route(path, prm, methods=["GET", "OPTIONS"]),
        Route("/.well-known/oauth-protected-resource", prm, methods=["GET", "OPTIONS"]),
    ]


def oauth_routes(
    server: AuthorizationServer,
    *,
    issuer: str,
    audience: Audience,
    pages: Pages,
    offered_scopes: Sequence[str],
    rate_limited: RateLimited,
) -> list[BaseRoute]:
    """Metadata, /authorize, /token, /register and /revoke."""
    provider, clients = server.provider, server.clients
    metadata = authorization_server_metadata(issuer, offered_scopes=offered_scopes)
    registration = RegistrationHandler(provider, options=ClientRegistrationOptions(enabled=True))
    authorize = AuthorizeEndpoint(provider=provider, clients=clients, issuer=issuer, pages=pages)
    get, post = ["GET", "OPTIONS"], ["POST", "OPTIONS"]

    def posted(path: str, handler: object, limit: int, *, no_store: bool = False) -> Route:
        app = rate_limited(path, body_limited(handler, limit))
        return Route(path, public_cors(NoStore(app) if no_store else app, post), methods=post)

    return [
        Route(
            "/.well-known/oauth-authorization-server",
            public_cors(request_response(MetadataHandler(metadata).handle), get),
            methods=get,
        ),
        Route("/authorize", rate_limited("/authorize", body_limited(authorize, OAUTH_BODY_LIMIT)), methods=["GET", "POST"]),
        posted("/token", TokenEndpoint(provider=provider, audience=audience), OAUTH_BODY_LIMIT),
        # RFC 7591 §3.2.1's answer carries the client secret: like a token response, never cached.
        posted("/register", registration.handle, REGISTRATION_BODY_LIMIT, no_store=True),
        posted("/revoke", RevokeEndpoint(provider=provider), OAUTH_BODY_LIMIT),
    ]


def browser_routes(server: AuthorizationServer, *, rate_limited: RateLimited) -> list[BaseRoute]:
    """The pages a person's browser visits: consent, the way back from GitHub, and the account page."""

    def page(path: str, handler: object, method: str) -> Route:
        if method == "POST":
            handled: ASGIApp = body_limited(handler, CONSENT_BODY_LIMIT)
            return Route(path, AsgiEndpoint(rate_limited(path, handled)), methods=[method])
        return Route(path, AsgiEndpoint(rate_limited(path, request_response(handler))), methods=[method])  # type: ignore[arg-type]

    return [
        page("/consent", server.consent.show, "GET"),
        page("/consent", server.consent.decide, "POST"),
        page(CALLBACK_PATH, server.callback.handle, "GET"),
        page(ACCOUNT_PATH, server.account.show, "GET"),
        page(SIGN_IN_PATH, server.account.sign_in, "GET"),
        page(CALLBACK_PATH + ACCOUNT_CALLBACK_SUFFIX, server.account.callback, "GET"),
        page(REVOKE_PATH, server.account.revoke, "POST"),
        page(SIGN_OUT_PATH, server.account.sign_out, "POST"),
    ]
