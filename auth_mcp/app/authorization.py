"""The authorization server's parts and routes: metadata, /authorize, /token, /register,
/revoke, the consent page and GitHub's callback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
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
from auth_mcp.authorization.cimd import ClientMetadataError, MetadataDocumentClients
from auth_mcp.authorization.client_assertion import (
    PRIVATE_KEY_JWT,
    SIGNING_ALGORITHMS,
    AssertionRefused,
    ClientAssertions,
    ClientKeys,
)
from auth_mcp.authorization.client_authentication import ClientAuthentication
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.consent import Consent
from auth_mcp.authorization.endpoints import AuthorizeEndpoint, RegisterEndpoint, RevokeEndpoint, TokenEndpoint
from auth_mcp.authorization.provider import AuthServerProvider
from auth_mcp.clock import Clock
from auth_mcp.http.cors import public_cors
from auth_mcp.http.pages import Pages
from auth_mcp.http.routing import AsgiEndpoint, NoStore, body_limited
from auth_mcp.resource.audience import Audience, Resources
from auth_mcp.scopes import OFFLINE_ACCESS
from auth_mcp.storage.replay import SqlReplayLedger

# Bodies are bounded before anything parses them (a 256 MB consent form once cost 222 MiB).
REGISTRATION_BODY_LIMIT = 16 * 1024  # RFC 7591 metadata is small; bound what a stranger can store
OAUTH_BODY_LIMIT = 16 * 1024  # /authorize, /token, /revoke: a few parameters, a JWT assertion at most
CONSENT_BODY_LIMIT = 4 * 1024  # the consent form: a request id, a CSRF token and the decision
AUTH_METHODS = ["none", "client_secret_post", "client_secret_basic"]
TOKEN_PATH = "/token"

RateLimited = Callable[[str, ASGIApp], ASGIApp]  # (path, app) -> the app behind that path's rate limit


@dataclass
class AuthorizationServer:
    provider: AuthServerProvider
    clients: ClientDirectory
    authenticator: ClientAuthentication
    consent: Consent
    callback: GitHubCallback
    account: AccountPages
    ledger: SqlReplayLedger


def build_authorization_server(
    core: Core, *, documents: MetadataDocumentClients, offered_scopes: Sequence[str], policy_github_scopes: Sequence[str] = ()
) -> AuthorizationServer:
    settings, store, keyring, clock = core.settings, core.store, core.keyring, core.clock
    github, pages, metrics = core.github.client, core.pages, core.metrics
    issuer = settings.issuer
    clients = ClientDirectory(
        store=store,
        keyring=keyring,
        documents=documents if settings.client_metadata_documents else None,
        offered_scopes=offered_scopes,
        max_unused=settings.max_unused_clients,
    )
    policy = AccessPolicy(allowed_users=settings.allowed_users, allowed_orgs=settings.allowed_orgs)
    provider = AuthServerProvider(
        store=store,
        clients=clients,
        verifier=core.verifier,
        revoker=core.revoker,
        resources=core.resources,
        clock=clock,
        issuer=issuer,
        access_token_ttl=settings.access_token_ttl,
        refresh_token_ttl=settings.refresh_token_ttl,
        metrics=metrics,
        max_pending=settings.max_pending_authorizations,
        recheck=MembershipRecheck(policy=policy, store=store, people=core.people) if policy.restricted else None,
    )
    ledger = SqlReplayLedger(engine=core.engine, clock=clock)
    authenticator = _client_authentication(provider, documents=documents, ledger=ledger, clock=clock, issuer=issuer)
    browser = BrowserBinding(keyring=keyring, secure=urlsplit(issuer).scheme == "https")

    def github_scopes(mcp_scopes: Sequence[str]) -> list[str]:
        # We ask GitHub for exactly the scopes the client was granted, plus what the allowlist and
        # the tool policies need to check memberships (read:org).
        return list(dict.fromkeys([*mcp_scopes, *policy.github_scopes, *policy_github_scopes]))

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
    return AuthorizationServer(
        provider=provider, clients=clients, authenticator=authenticator, consent=consent, callback=callback, account=account, ledger=ledger
    )


def _client_authentication(
    provider: AuthServerProvider, *, documents: MetadataDocumentClients, ledger: SqlReplayLedger, clock: Clock, issuer: str
) -> ClientAuthentication:
    """The SDK's client authentication plus private_key_jwt, with keys from clients' documents."""

    async def fetch_key_set(url: str) -> tuple[Any, float]:
        # A client's jwks_uri, under the same fetch rules and limits as metadata documents.
        try:
            return await documents.fetch_json(url)
        except ClientMetadataError as exc:
            raise AssertionRefused(f"the client's jwks_uri could not be used: {exc}") from None

    assertions = ClientAssertions(
        keys=ClientKeys(fetch=fetch_key_set, clock=clock),
        ledger=ledger,
        clock=clock,
        # RFC 7523 §3 item 3: the authorization server's issuer or its token endpoint URL.
        audiences=[issuer, issuer + TOKEN_PATH],
    )
    return ClientAuthentication(provider, assertions=assertions)


class _MetadataWithKeys(OAuthMetadata):
    """The SDK's RFC 8414 model lacks `jwks_uri`; a string keeps it exactly as built."""

    jwks_uri: str


def authorization_server_metadata(
    issuer: str,
    *,
    offered_scopes: Sequence[str],
    dynamic_registration: bool,
    metadata_documents: bool,
    jwks_uri: str | None = None,
) -> OAuthMetadata:
    """RFC 8414 metadata, as the SDK builds it, with what this server adds; it advertises only
    the ways in that are switched on."""
    metadata = build_metadata(
        issuer,  # type: ignore[arg-type]  # a str keeps the issuer exact (no trailing slash)
        None,
        ClientRegistrationOptions(enabled=dynamic_registration),
        RevocationOptions(enabled=True),
    )
    # private_key_jwt is for metadata-document clients (cimd.py); registration does not offer it.
    methods = [*AUTH_METHODS, PRIVATE_KEY_JWT] if metadata_documents else AUTH_METHODS
    metadata = metadata.model_copy(
        update={
            # offline_access: clients (ChatGPT) look for it before asking for refresh tokens; every
            # client gets one whether it asks or not, so granting it changes nothing (clients.py).
            "scopes_supported": [*offered_scopes, OFFLINE_ACCESS],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS) if metadata_documents else None,
            "revocation_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS) if metadata_documents else None,
            # RFC 9207 §3: every authorization response carries iss.
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": metadata_documents,
            "registration_endpoint": metadata.registration_endpoint if dynamic_registration else None,
        }
    )
    if jwks_uri is None:
        return metadata
    # RFC 8414 §2: the keys that sign the gateway's identity tokens (gateway/signing.py).
    return _MetadataWithKeys(**metadata.model_dump(exclude_none=True), jwks_uri=jwks_uri)


def protected_resource_routes(
    audience: Audience, *, issuer: str, scopes: list[str], name: str, at_root: bool = True
) -> list[BaseRoute]:
    """RFC 9728 metadata of one resource, at its path; also at the root for clients that look
    there (`at_root`: the built-in endpoint's; a gateway upstream's only at its own path)."""
    resource_metadata = ProtectedResourceMetadata(
        resource=audience.canonical,
        authorization_servers=[issuer],
        scopes_supported=scopes,
        resource_name=name,
    )
    prm = public_cors(request_response(ProtectedResourceMetadataHandler(resource_metadata).handle), ["GET", "OPTIONS"])
    path = urlsplit(str(build_resource_metadata_url(audience.canonical))).path  # type: ignore[arg-type]
    routes: list[BaseRoute] = [Route(path, prm, methods=["GET", "OPTIONS"])]
    if at_root:
        routes.append(Route("/.well-known/oauth-protected-resource", prm, methods=["GET", "OPTIONS"]))
    return routes


def oauth_routes(
    server: AuthorizationServer,
    *,
    issuer: str,
    resources: Resources,
    pages: Pages,
    offered_scopes: Sequence[str],
    rate_limited: RateLimited,
    dynamic_registration: bool,
    metadata_documents: bool,
    jwks_uri: str | None = None,
) -> list[BaseRoute]:
    """Metadata, /authorize, /token, /register (when dynamic registration is on) and /revoke."""
    provider, clients = server.provider, server.clients
    metadata = authorization_server_metadata(
        issuer, offered_scopes=offered_scopes, dynamic_registration=dynamic_registration, metadata_documents=metadata_documents, jwks_uri=jwks_uri
    )
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
        posted(TOKEN_PATH, TokenEndpoint(provider=provider, resources=resources, authenticator=server.authenticator), OAUTH_BODY_LIMIT),
        # RFC 7591 §3.2.1's answer carries the client secret: like a token response, never cached.
        *(
            [posted("/register", RegisterEndpoint(handler=registration), REGISTRATION_BODY_LIMIT, no_store=True)]
            if dynamic_registration
            else []
        ),
        posted("/revoke", RevokeEndpoint(provider=provider, authenticator=server.authenticator), OAUTH_BODY_LIMIT),
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
