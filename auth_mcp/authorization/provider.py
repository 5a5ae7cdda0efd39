"""Our OAuth 2.1 authorization server logic behind the MCP SDK's handlers.

The SDK's handlers parse requests, authenticate clients, check PKCE, code expiry and the
redirect URI at /token, and render errors. This provider decides everything else: who the
clients are, what an authorization request becomes (a consent page, never a direct redirect to
GitHub), and the single-use, replay-punishing life of codes and tokens. It does not know GitHub:
the consent page and the GitHub callback (consent.py, callback.py) sit between `authorize` and
the code it later loads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from mcp.server.auth.provider import (
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from auth_mcp import tokens
from auth_mcp.authorization.access_policy import Decision
from auth_mcp.authorization.cimd import is_metadata_document_url
from auth_mcp.authorization.client_directory import ClientDirectory
from auth_mcp.authorization.clients import RegisteredClient
from auth_mcp.authorization.revocation import Revoker
from auth_mcp.clock import Clock
from auth_mcp.github.models import GitHubError, GitHubRateLimited, GitHubUnavailable
from auth_mcp.github.person import GrantEnded
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.outage import note_outage
from auth_mcp.resource.audience import Resources
from auth_mcp.resource.verifier import CachedVerifier, McpAccessToken
from auth_mcp.scopes import DEFAULT_SCOPE
from auth_mcp.storage.availability import StorageUnavailable
from auth_mcp.storage.records import PendingAuthorization, TokenPair
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)

CONSENT_PATH = "/consent"
# The client's `state` is stored until the person comes back from GitHub. Real clients send a
# few dozen characters (a random value, or a small encoded object); 1 KiB fits them all and
# bounds the row (a 63 KB state was accepted before).
MAX_STATE_LENGTH = 1024
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")

Recheck = Callable[[str], Awaitable[Decision]]
"""grant id -> is the person still allowed in (access_policy.MembershipRecheck)."""


class GrantRefreshToken(RefreshToken):
    grant_id: str


class GrantAuthorizationCode(AuthorizationCode):
    grant_id: str


class AuthServerProvider:
    """`mcp.server.auth.provider.OAuthAuthorizationServerProvider` for auth-mcp."""

    def __init__(
        self,
        *,
        store: Store,
        clients: ClientDirectory,
        verifier: CachedVerifier,
        revoker: Revoker,
        resources: Resources,
        clock: Clock,
        issuer: str,
        access_token_ttl: int,
        refresh_token_ttl: int,
        metrics: Metrics,
        max_pending: int,
        recheck: Recheck | None = None,
    ) -> None:
        self._metrics = metrics
        self._max_pending = max_pending
        self._recheck = recheck
        self._store = store
        self._clients = clients
        self._verifier = verifier
        self._revoker = revoker
        self._resources = resources
        self._clock = clock
        self._issuer = issuer
        self._access_ttl = access_token_ttl
        self._refresh_ttl = refresh_token_ttl

    def _now(self) -> int:
        return int(self._clock.now())

    # Clients ---------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> RegisteredClient | None:
        try:
            return await self._clients.get(client_id)
        except StorageUnavailable as exc:
            # The SDK's handlers call this inside catch-alls that would log a traceback (/authorize)
            # or call the client unknown (/token): note the outage, so the answer becomes 503 with
            # Retry-After (http/outage.py), and answer as for no client meanwhile.
            note_outage(exc)
            return None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        evicted = await self._clients.register(client_info, now=self._now())
        if evicted:
            self._metrics.storage_evictions.labels("clients").inc(evicted)
        logger.info("registered client %s (%r)", client_info.client_id, client_info.client_name)

    # /authorize -> consent page -------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        # RFC 8707 §2: a resource we are not is refused before anything is stored.
        target = self._resources.find(params.resource)
        if target is None:
            raise AuthorizeError("invalid_target", "the resource parameter does not name an MCP server served here")
        if not _S256_CHALLENGE.fullmatch(params.code_challenge):
            # RFC 7636 §4.2: an S256 challenge is 43 base64url characters (we allow up to 128).
            raise AuthorizeError("invalid_request", "code_challenge must be 43 to 128 characters of base64url")
        if params.state is not None and len(params.state) > MAX_STATE_LENGTH:
            raise AuthorizeError("invalid_request", f"state is limited to {MAX_STATE_LENGTH} characters")
        request_id = tokens.new_opaque_id()
        now = self._now()
        try:
            evicted = await self._store.add_pending(
                PendingAuthorization(
                    request_hash=tokens.token_hash(request_id),
                    client_id=client.client_id,
                    redirect_uri=str(params.redirect_uri),
                    redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
                    code_challenge=params.code_challenge,
                    client_state=params.state,
                    scopes=tuple(params.scopes or (DEFAULT_SCOPE,)),
                    resource=target.canonical,
                    created_at=now,
                    expires_at=now + tokens.CONSENT_TTL,
                ),
                max_pending=self._max_pending,
            )
        except StorageUnavailable as exc:
            # The SDK's handler would log this as a crash: answer with RFC 6749 §4.1.2.1's code,
            # which the outage layer turns into 503 with Retry-After.
            note_outage(exc)
            raise AuthorizeError("temporarily_unavailable", "the server cannot store the request right now") from None
        if evicted:
            self._metrics.storage_evictions.labels("pending_authorizations").inc(evicted)
        # Confused deputy (MCP security best practices): the person approves this client on our
        # own page before anything is sent to GitHub.
        return f"{self._issuer}{CONSENT_PATH}?{urlencode({'request': request_id})}"

    # /token: authorization_code ----------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> GrantAuthorizationCode | None:
        record = await self._store.get_code(tokens.token_hash(authorization_code))
        if record is None or record.client_id != client.client_id:
            # Another client's code (code injection) is treated as unknown; the SDK says so.
            return None
        if record.used_at is not None:
            # RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a code used twice revokes what it issued.
            self._metrics.tokens_refused.labels("code_replay").inc()
            await self._revoker.revoke_grant(record.grant_id, reason="authorization code replayed", at_github=True)
            return None
        if record.expires_at <= self._now():
            return None
        return GrantAuthorizationCode(
            code=authorization_code,
            scopes=list(record.scopes),
            expires_at=float(record.expires_at),
            client_id=record.client_id,
            code_challenge=record.code_challenge,
            redirect_uri=record.redirect_uri,
            redirect_uri_provided_explicitly=record.redirect_uri_provided_explicitly,
            resource=record.resource,
            grant_id=record.grant_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: GrantAuthorizationCode
    ) -> OAuthToken:
        access, refresh, pair = self._mint(authorization_code.scopes, authorization_code.resource or self._resources.default.canonical)
        won = await self._store.consume_code(tokens.token_hash(authorization_code.code), pair, client_id=client.client_id)
        if not won:
            # A concurrent exchange got here first: this request is a replay.
            await self._revoker.revoke_grant(
                authorization_code.grant_id, reason="authorization code redeemed twice concurrently", at_github=True
            )
            raise TokenError("invalid_grant", "authorization code was already used")
        self._metrics.tokens_issued.labels("authorization_code").inc()
        await self._retire_superseded(authorization_code.grant_id)
        return self._token_response(access, refresh, pair)

    async def _retire_superseded(self, grant_id: str) -> None:
        """One person, one live grant per client: a new grant ends the person's older grants of the
        same client whose scopes it covers (a step-up to more scopes, or a repeated sign-in).

        Only once the new grant's code is redeemed, so the client holds working tokens before the
        old ones stop; the client replaces its tokens with the new pair, so its later refreshes
        use the new grant. Not for metadata-document clients: their client id is one URL shared
        by every installation (every laptop running the same app), so an older grant may be
        another installation's. Nor when the new grant has fewer scopes than an older one: that is
        more likely another installation than a step-up.
        """
        grant = await self._store.get_grant(grant_id)
        if grant is None or is_metadata_document_url(grant.client_id):
            return
        for older in await self._store.list_grants(github_user_id=grant.github_user_id):
            if older.grant_id != grant_id and older.client_id == grant.client_id and set(older.scopes) <= set(grant.scopes):
                await self._revoker.revoke_grant(
                    older.grant_id, reason=f"superseded by grant {grant_id[:8]} ({' '.join(grant.scopes)})", at_github=True
                )

    # /token: refresh_token ---------------------------------------------------------------------

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> GrantRefreshToken | None:
        record = await self._store.get_refresh_token(tokens.token_hash(refresh_token))
        if record is None or record.client_id != client.client_id:
            return None
        if record.rotated_at is not None:
            # OAuth 2.1 §4.3.1: a rotated refresh token used again means it leaked; end the grant.
            # No grace period for the previous token: a client that lost the response logs in again.
            self._metrics.tokens_refused.labels("refresh_replay").inc()
            await self._revoker.revoke_grant(record.grant_id, reason="rotated refresh token replayed", at_github=True)
            return None
        if record.expires_at <= self._now():
            return None
        return GrantRefreshToken(
            token=refresh_token,
            client_id=record.client_id,
            scopes=list(record.scopes),
            expires_at=record.expires_at,
            resource=record.resource,
            grant_id=record.grant_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: GrantRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        await self._check_still_allowed(refresh_token.grant_id)
        # RFC 6749 §6: the new refresh token keeps the scope of the one it replaces, however
        # narrow the access token this request asked for.
        access, refresh, pair = self._mint(
            scopes, refresh_token.resource or self._resources.default.canonical, refresh_scopes=refresh_token.scopes
        )
        won = await self._store.rotate_refresh_token(tokens.token_hash(refresh_token.token), pair)
        # The grant's previous access token is gone either way.
        self._verifier.forget_grant(refresh_token.grant_id)
        if not won:
            await self._revoker.revoke_grant(
                refresh_token.grant_id, reason="refresh token redeemed twice concurrently", at_github=True
            )
            raise TokenError("invalid_grant", "refresh token was already used")
        await self._revoker.announce(refresh_token.grant_id)
        self._metrics.tokens_issued.labels("refresh_token").inc()
        return self._token_response(access, refresh, pair)

    async def _check_still_allowed(self, grant_id: str) -> None:
        """The access policy again, so that leaving an allowed org ends access within one refresh."""
        if self._recheck is None:
            return
        try:
            decision = await self._recheck(grant_id)
        except GrantEnded as exc:
            raise TokenError("invalid_grant", str(exc)) from None
        except (GitHubUnavailable, GitHubRateLimited):
            # GitHub cannot answer now: neither a yes nor a no. invalid_grant would make the
            # client drop its refresh token and send the person to log in again (through the
            # same outage); instead this propagates to the outage layer: 503 with Retry-After,
            # and the refresh token, unspent, works once GitHub answers.
            raise
        except GitHubError as exc:
            # Fail closed, but keep the grant: the client may try again once GitHub answers.
            raise TokenError("invalid_grant", f"could not confirm with GitHub that access is still allowed: {exc}") from None
        if not decision.allowed:
            await self._revoker.revoke_grant(grant_id, reason=f"no longer allowed: {decision.reason}", at_github=True)
            raise TokenError("invalid_grant", decision.reason)

    # Verification and revocation ---------------------------------------------------------------

    async def load_access_token(self, token: str) -> McpAccessToken | None:
        return await self._verifier.verify_token(token)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        """Refused: people sign in through GitHub here, and this server trusts no enterprise
        identity provider to assert who they are (SEP-990's jwt-bearer grant is not offered; the
        metadata does not list it)."""
        raise TokenError(
            "unsupported_grant_type", "this server does not accept identity assertions; use authorization_code"
        )

    async def revoke_token(self, token: McpAccessToken | GrantRefreshToken) -> None:
        # Revoking either token ends the whole grant (RFC 7009 §2.1 allows it; the SDK asks for it).
        await self._revoker.revoke_grant(token.grant_id, reason="revoked by the client", at_github=True)

    async def revoke_by_token(self, client: OAuthClientInformationFull, token: str) -> bool:
        """RFC 7009: end the grant behind `token` if it is this client's access or refresh token.

        Expired and rotated tokens count too: a client logging out with a stale access token
        must still end the grant its refresh token keeps alive.
        """
        digest = tokens.token_hash(token)
        grant_id = None
        access = await self._store.get_access_token(digest)
        if access is not None and access.client_id == client.client_id:
            grant_id = access.grant_id
        else:
            refresh = await self._store.get_refresh_token(digest)
            if refresh is not None and refresh.client_id == client.client_id:
                grant_id = refresh.grant_id
        if grant_id is None:
            return False
        await self._revoker.revoke_grant(grant_id, reason="revoked by the client", at_github=True)
        return True

    # Minting -------------------------------------------------------------------------------------

    def _mint(self, scopes: list[str], resource: str, *, refresh_scopes: list[str] | None = None) -> tuple[str, str, TokenPair]:
        now = self._now()
        access = tokens.new_access_token()
        refresh = tokens.new_refresh_token()
        pair = TokenPair(
            access_hash=tokens.token_hash(access),
            access_expires_at=now + self._access_ttl,
            refresh_hash=tokens.token_hash(refresh),
            refresh_expires_at=now + self._refresh_ttl,
            scopes=tuple(scopes),
            resource=resource,
            refresh_scopes=None if refresh_scopes is None or list(refresh_scopes) == list(scopes) else tuple(refresh_scopes),
        )
        return access, refresh, pair

    def _token_response(self, access: str, refresh: str, pair: TokenPair) -> OAuthToken:
        # Our own refresh token is issued whatever GitHub does: its lifetime is ours.
        return OAuthToken(
            access_token=access,
            expires_in=self._access_ttl,
            scope=" ".join(pair.scopes),
            refresh_token=refresh,
        )
